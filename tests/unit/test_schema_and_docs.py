"""The job files' JSON Schema, the documentation site and the version (issue #34): the schema is the models',
every shipped job passes it, editors find it, the site builds offline with --strict, the README stays short."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import yaml

from orchestrator import __version__
from orchestrator.job import schema, spec
from orchestrator.running import scheduler
from orchestrator.cli import main
from tests.conftest import ROOT

JOBS = sorted((ROOT / "jobs").glob("*.yaml"))
LINE = "# yaml-language-server: $schema=../schemas/job.schema.json"


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((ROOT / schema.FILE).read_text()))


def test_the_shipped_schema_is_the_models_schema():
    assert (ROOT / schema.FILE).read_text() == schema.text(), "run `make schema` after changing orchestrator/job/spec.py"
    jsonschema.Draft202012Validator.check_schema(schema.json_schema())


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_every_shipped_job_passes_the_schema_and_names_it_for_editors(path):
    assert path.read_text().splitlines()[0] == LINE
    assert list(validator().iter_errors(yaml.safe_load(path.read_text()))) == []
    spec.load(path)  # and the models agree


@pytest.mark.parametrize("change, where", [
    ({"sweep": {"workers": [1, 2], "repeat": 2}}, "repeat"),            # a typo: additionalProperties
    ({"arms": [{"framework": "jax", "strategy": "ddp"}]}, "jax"),        # an enum
    ({"batch": {"per_worker": 0}}, "0"),                                 # a range
    ({"training": {"steps": "many"}}, "many"),                           # a type
])
def test_an_editor_flags_what_the_spec_refuses(change, where):
    job = yaml.safe_load((ROOT / "jobs/digits-mlp.yaml").read_text())
    job.update(change)
    errors = [e.message for e in validator().iter_errors(job)]
    assert errors and any(where in m for m in errors), errors
    with pytest.raises(spec.SpecError):
        spec.parse(job)


def test_the_reference_lists_every_field_of_every_block():
    text = schema.reference_markdown()
    for path, model in schema._models():
        assert f"## `{path or 'top level'}`" in text
        for name, info in model.model_fields.items():
            assert f"| `{info.alias or name}` |" in text, (path, name)


def test_orchestrator_schema_writes_the_file(tmp_path, capsys):
    out = tmp_path / "job.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["x-orchestrator-version"] == __version__


def test_version_flag_and_the_version_in_every_record(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"orchestrator {__version__}"
    cluster = SimpleNamespace(nodes=[{}], total={"CPU": 2.0}, embedded=True)
    assert scheduler.environment(cluster)["orchestrator"] == __version__


def test_the_readme_is_short_and_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    block = lines[lines.index("```bash") + 1:lines.index("```bash") + 3]
    assert block[0].startswith("make demo ") and block[1].startswith("make test ")
    for link in re.findall(r"\]\(((?:docs|bench)/[^)#]+)", "\n".join(lines)):
        assert (ROOT / link).exists(), link


def test_the_documentation_site_builds_offline_with_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) > 15
    external = set()
    for page in pages:  # nothing fetched when the site is read: no fonts, scripts or styles from elsewhere
        external |= set(re.findall(r'<(?:link|script)[^>]+(?:href|src)="(https?://[^"]+)"', page.read_text()))
    assert not external, sorted(external)[:5]
    reference = (tmp_path / "site/reference/job-spec/index.html").read_text()
    assert "per_worker" in reference and "collective_timeout_s" in reference
