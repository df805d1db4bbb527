"""The bad-input table: job specs and CLI arguments that must each get exit code 2 and a one-line message
naming the field, within seconds, with no traceback. Nothing here starts a cluster."""

import socket

import pytest
import yaml

from orchestrator.running import cluster
from orchestrator.cli import main
from orchestrator.errors import UserError

BASE = {
    "name": "bad",
    "arms": [{"framework": "torch", "strategy": "ddp"}],
    "workload": {"model": "mlp"},
    "training": {"steps": 20, "warmup_steps": 2},
    "sweep": {"workers": [1, 2]},
}


def spec_with(path, value):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[int(last) if last.isdigit() else last] = value
    return yaml.safe_dump(data)


SPECS = [
    ("malformed YAML", "name: x\narms: [\n", "malformed YAML"),
    ("not a mapping", "[1, 2]\n", "top level"),
    ("python tag", "name: !!python/object/apply:os.system ['id']\n", "malformed YAML"),
    ("a field given twice", spec_with("sweep", {"workers": [1]}) + "sweep: {workers: [1, 2]}\n",
     "'sweep' is given twice in one mapping; keep one"),
    ("unknown top-level field", spec_with("colour", "red"), "colour: unknown field"),
    ("misspelt field", spec_with("sweeep", {"workers": [1]}), "did you mean 'sweep'"),
    ("unknown framework", spec_with("arms.0.framework", "jax"), "arms[0].framework"),
    ("strategy unknown for torch", spec_with("arms.0.strategy", "multi_worker_mirrored"), "not one of torch's"),
    ("strategy unknown for tensorflow", spec_with("arms.0", {"framework": "tensorflow", "strategy": "ddp"}), "tensorflow's"),
    ("negative worker count", spec_with("sweep.workers", [1, -2]), "sweep.workers"),
    ("zero workers", spec_with("sweep.workers", [0]), "sweep.workers"),
    ("huge worker count", spec_with("sweep.workers", [10**9]), "sweep.workers"),
    ("workers not a list", spec_with("sweep.workers", "1,2"), "sweep.workers"),
    ("zero repeats", spec_with("sweep.repeats", 0), "sweep.repeats"),
    ("huge steps", spec_with("training.steps", 10**15), "training.steps"),
    ("steps as text", spec_with("training.steps", "many"), "training.steps"),
    ("warm-up eats every step", spec_with("training", {"steps": 5, "warmup_steps": 5}), "warmup_steps"),
    ("steps and epochs", spec_with("training", {"steps": 5, "epochs": 1}), "exactly one of 'steps' or 'epochs'"),
    ("negative batch", spec_with("batch", {"per_worker": -4}), "batch.per_worker"),
    ("batch as text", spec_with("batch", {"per_worker": "big"}), "batch.per_worker"),
    ("indivisible strong batch", spec_with("batch", {"global": 33, "scaling": "strong"}), "does not divide"),
    ("infinite learning rate", "name: bad\narms: [{framework: torch, strategy: ddp}]\nworkload: {model: mlp}\n"
     "training: {steps: 9, learning_rate: 1e400}\nsweep: {workers: [1]}\n", "training.learning_rate"),
    ("momentum of 1.5", spec_with("training.momentum", 1.5), "training.momentum"),
    ("zero CPUs per worker", spec_with("resources", {"cpus_per_worker": 0}), "resources.cpus_per_worker"),
    ("negative GPUs", spec_with("resources", {"gpus_per_worker": -1}), "resources.gpus_per_worker"),
    ("unknown model", spec_with("workload", {"model": "resnet"}), "workload.model"),
    ("unknown dataset", spec_with("dataset", {"name": "imagenet"}), "dataset.name"),
    ("shell in entrypoint", spec_with("workload", {"entrypoint": "os:system; rm -rf /"}), "workload.entrypoint"),
    ("command substitution", spec_with("workload", {"entrypoint": "$(curl x)"}), "workload.entrypoint"),
    ("backticks in an arm's entrypoint", spec_with("arms.0.entrypoint", "`id`:f"), "arms[0].entrypoint"),
    ("script tag in the name", spec_with("name", "<script>alert(1)</script>"), "name"),
    ("shell in the name", spec_with("name", "a;reboot"), "name"),
    ("path traversal in storage_path", spec_with("storage_path", "/data/../../etc"), "storage_path"),
    ("repeated arms", spec_with("arms", [{"framework": "torch", "strategy": "ddp"}] * 2), "arms repeat"),
    ("adaptive with two counts", spec_with("sweep", {"workers": [1, 2], "adaptive": True}), "at least 3"),
    ("negative max_failures", spec_with("reliability", {"max_failures": -1}), "reliability.max_failures"),
    ("zero collective timeout", spec_with("reliability", {"collective_timeout_s": 0}), "reliability.collective_timeout_s"),
    ("negative placement timeout", spec_with("reliability", {"placement_timeout_s": -5}), "reliability.placement_timeout_s"),
    ("placement timeout as text", spec_with("reliability", {"placement_timeout_s": "soon"}), "reliability.placement_timeout_s"),
    ("huge placement timeout", spec_with("reliability", {"placement_timeout_s": 10**12}), "reliability.placement_timeout_s"),
    ("horovod spelt wrong", spec_with("arms.0.strategy", "horovd"), "not one of torch's: ddp, horovod"),
]


@pytest.mark.parametrize("what, text, words", SPECS, ids=[s[0] for s in SPECS])
def test_bad_spec(tmp_path, capsys, what, text, words):
    job = tmp_path / "job.yaml"
    job.write_text(text)
    assert main(["sweep", str(job), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert words in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


GOOD = "jobs/smoke.yaml"
ARGS = [
    ("missing job file", ["sweep", "no/such.yaml"], "no such job file"),
    ("traversal in --out", ["sweep", GOOD, "--out", "x/../../etc"], "--out"),
    ("dashboard URL as --address", ["sweep", GOOD, "--address", "http://127.0.0.1:8265"], "--address"),
    ("report of a missing directory", ["report", "no/such/dir"], "no such directory"),
    ("k8s render with no workers", ["k8s", "render", GOOD], "--workers"),
    ("k8s render with zero workers", ["k8s", "render", GOOD, "--workers", "0"], "argument --workers: '0': must be a whole number from 1 to 4096"),
    ("TPU topology that does not match the workers", ["k8s", "render", GOOD, "--workers", "6", "--accelerator", "tpu-v6e", "--topology", "4x4"], "not a multiple of the 4 host(s)"),
    ("unknown TPU topology", ["k8s", "render", GOOD, "--workers", "4", "--accelerator", "tpu-v5e", "--topology", "3x3"], "valid: 1x1"),
    ("unknown accelerator", ["k8s", "render", GOOD, "--workers", "2", "--accelerator", "fpga"], "--accelerator"),
    ("threshold above 1", ["recommend", "jobs", "--threshold", "2"], "--threshold"),
    ("share with no CPUs", ["share", "jobs", "--cpus", "0"], "--cpus"),
    ("recommendation written over a directory", ["recommend", "jobs", "--emit", "jobs"], "--emit jobs: is a directory"),
    ("manifests written under a file", ["k8s", "render", GOOD, "--workers", "2", "-o", f"{GOOD}/x.yaml"], f"{GOOD} is a file"),
]


@pytest.mark.parametrize("what, argv, words", ARGS, ids=[a[0] for a in ARGS])
def test_bad_arguments(capsys, what, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [["frobnicate"], ["sweep"], ["sweep", GOOD, "--workers", "3"], ["k8s", "render", GOOD, "--workers", "two"]])
def test_argparse_errors_exit_2_in_one_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_oversized_and_binary_specs(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n" + "#" * (1 << 21))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    for path, words in ((big, "larger than"), (binary, "not UTF-8")):
        assert main(["sweep", str(path), "--dry-run"]) == 2
        assert words in capsys.readouterr().err


@pytest.mark.parametrize("argv, command", [(["sweep", GOOD, "--workers", "3"], "orchestrator sweep"),
                                           (["k8s", "render", GOOD, "--bogus"], "orchestrator k8s render"),
                                           (["k8s", "render", GOOD, "--workers", "two"], "orchestrator k8s render"),
                                           (["frobnicate"], "orchestrator")])
def test_argparse_errors_point_to_the_help_of_the_command_given(capsys, argv, command):
    assert main(argv) == 2
    assert f"(see '{command} --help')" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_address_nobody_listens_on_is_refused_at_once(capsys, tmp_path):
    # ray.init would retry it for ~12 minutes; the sweep refuses it before touching Ray.
    address = f"127.0.0.1:{_closed_port()}"
    assert main(["sweep", GOOD, "--address", address, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"--address {address}: no Ray cluster answers there" in err and "drop --address" in err
    assert err.count("\n") == 1
    with pytest.raises(UserError, match="RAY_ADDRESS .* unset RAY_ADDRESS"):
        cluster._check_reachable(address, "RAY_ADDRESS")


def test_an_address_that_answers_or_is_left_to_ray_passes():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        cluster._check_reachable(f"127.0.0.1:{listening.getsockname()[1]}", "--address")
    for address in ("auto", "ray://head:10001", "local"):
        cluster._check_reachable(address, "--address")
