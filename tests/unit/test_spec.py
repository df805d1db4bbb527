"""The job spec's validation, as a table of good and bad inputs."""

import copy

import pytest
import yaml

from orchestrator.job import spec
from orchestrator.errors import SpecError

GOOD = {
    "name": "t",
    "arms": [{"framework": "torch", "strategy": "ddp"}, {"framework": "tensorflow", "strategy": "multi_worker_mirrored"}],
    "workload": {"model": "mlp"},
    "batch": {"per_worker": 16},
    "training": {"steps": 20, "warmup_steps": 2},
    "sweep": {"workers": [2, 1]},
}


def with_(path: str, value):
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    if value is DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


DELETE = object()


def test_good_spec_parses_and_sorts_workers():
    job = spec.parse(GOOD)
    assert job.sweep.workers == [1, 2]
    assert job.per_worker_batch(2) == 16 and job.global_batch(2) == 32


@pytest.mark.parametrize(
    "data, field, words",
    [
        (with_("arms.0.framework", "jax"), "arms[0].framework", "'torch' or 'tensorflow'"),
        (with_("arms.0.strategy", "multi_worker_mirrored"), "arms[0]", "not one of torch's: ddp"),
        (with_("arms.1.strategy", "ddp"), "arms[1]", "tensorflow's"),
        (with_("arms.0.colour", "red"), "arms[0].colour", "unknown field; known fields here: framework, strategy"),
        (with_("trainig", {"steps": 3}), "trainig", "unknown field; did you mean 'training'?"),
        (with_("sweep.workers", [1, -2]), "sweep.workers", "outside 1..4096"),
        (with_("sweep.workers", [1, 10**9]), "sweep.workers", "outside 1..4096"),
        (with_("sweep.workers", []), "sweep.workers", "at least 1"),
        (with_("sweep.workers", [1, 1]), "sweep.workers", "repeat"),
        (with_("sweep.workers", "two"), "sweep.workers", "valid list"),
        (with_("sweep.repeats", 0), "sweep.repeats", "greater than or equal to 1"),
        (with_("batch.per_worker", "big"), "batch.per_worker", "valid integer"),
        (with_("batch", {"global": 31, "scaling": "strong"}), "top level", "does not divide by 2 workers"),
        (with_("batch", {"per_worker": 8, "scaling": "strong"}), "batch", "use 'global'"),
        (with_("batch", {}), "batch", "exactly one of 'per_worker' or 'global'"),
        (with_("training", {"steps": 10, "warmup_steps": 10}), "training", "must be below steps"),
        (with_("training", {"steps": 10, "epochs": 2}), "training", "exactly one of 'steps' or 'epochs'"),
        (with_("training", {"warmup_steps": 2}), "top level", "set 'steps' or 'epochs' for a built-in workload"),
        (with_("training.steps", 10**12), "training.steps", "less than or equal to"),
        (with_("workload", {"model": "mlp", "entrypoint": "a.b:c"}), "workload", "exactly one"),
        (with_("workload", {"model": "resnet"}), "workload.model", "'mlp', 'cnn' or 'emulated'"),
        (with_("workload", {"entrypoint": "os:system; rm -rf /"}), "workload.entrypoint", "package.module:function"),
        (with_("workload", {"entrypoint": "$(reboot)"}), "workload.entrypoint", "package.module:function"),
        (with_("workload", {"model": "mlp", "params": {"hidden": [0]}}), "workload", "params.hidden"),
        (with_("name", "<script>"), "name", "letters, digits"),
        (with_("name", DELETE), "name", "is required"),
        (with_("storage_path", "../../etc"), "storage_path", "'..'"),
        (with_("resources.cpus_per_worker", -1), "resources.cpus_per_worker", "greater than 0"),
        (with_("dataset.name", "imagenet"), "dataset.name", "'digits' or 'synthetic'"),
    ],
)
def test_bad_spec_names_the_field(data, field, words):
    with pytest.raises(SpecError) as caught:
        spec.parse(data, "job.yaml")
    message = str(caught.value)
    assert message.startswith(f"job.yaml: {field}:"), message
    assert words in message, message
    assert "\n" not in message


def test_strong_scaling_batch_arithmetic():
    job = spec.parse(with_("batch", {"global": 64, "scaling": "strong"}))
    assert [job.per_worker_batch(n) for n in (1, 2)] == [64, 32]
    assert [job.global_batch(n) for n in (1, 2)] == [64, 64]


def test_global_batch_with_weak_scaling_fixes_the_per_worker_batch():
    job = spec.parse(with_("batch", {"global": 64, "scaling": "weak"}))
    assert [job.global_batch(n) for n in (1, 2)] == [64, 128]


def test_load_reports_malformed_yaml_with_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\narms: [\n  - {framework: torch\n")
    with pytest.raises(SpecError) as caught:
        spec.load(path)
    assert "malformed YAML" in str(caught.value) and "line" in str(caught.value)


def test_load_refuses_python_tags(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(SpecError, match="malformed YAML"):
        spec.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such job file"):
        spec.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", ["jobs/digits-mlp.yaml", "jobs/digits-cnn.yaml", "jobs/user-functions.yaml", "jobs/smoke.yaml", "jobs/gpu-cnn.yaml", "jobs/tpu-mlp.yaml"])
def test_shipped_jobs_are_valid(path):
    spec.load(path)


def test_yaml_round_trip_of_good_spec():
    assert spec.parse(yaml.safe_load(yaml.safe_dump(GOOD))) == spec.parse(GOOD)
