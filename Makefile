# Two commands for a new user:
#   make demo   set up .venv from nothing and run the default job (jobs/digits-mlp.yaml) on an embedded Ray cluster
#   make test   set up the dev extras and run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JOB ?= jobs/digits-mlp.yaml
OUT ?= reports/digits-mlp

.PHONY: demo test test-fast setup setup-dev horovod docs schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The stamp files make a second `make demo` start at once; they are rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "installing the orchestrator with torch and tensorflow into $(VENV) (about 2 minutes the first time)"
	$(BIN)/pip install --quiet --progress-bar off -e ".[all]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet --progress-bar off -e ".[dev]"
	touch $@

# Horovod (legacy, optional): 0.28.1 patched to build against the pinned torch and TF, wheel cached in
# ~/.cache/orchestrator/wheels (about 5 minutes the first time, seconds after). `make test` needs it.
$(VENV)/.installed-horovod: $(VENV)/.installed scripts/build_horovod.sh
	bash scripts/build_horovod.sh $(VENV)
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev
horovod: $(VENV)/.installed-horovod

demo: setup
	$(BIN)/orchestrator sweep $(JOB) --out $(OUT)
	@echo "open $(OUT)/report.html"

test: setup-dev horovod
	$(BIN)/python -m pytest tests --durations=10

test-fast: setup-dev
	$(BIN)/python -m pytest tests/unit

# The documentation site into site/ (offline; --strict: a broken link or a page that does not build fails).
docs: setup-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "open site/index.html"

# The job files' JSON Schema (schemas/job.schema.json), from the pydantic models; a test holds the two equal.
schema: setup
	$(BIN)/orchestrator schema -o schemas/job.schema.json

clean:
	rm -rf $(VENV) reports site .pytest_cache
