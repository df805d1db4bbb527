"""Accelerator-like workers (workload.model emulated: compute as device time, real gradients over gloo) on an
emulated 4-node cluster with tbf-shaped links: a sweep of 1 and 2 workers with the step breakdown, then 4
workers measured, and `orchestrator recommend` as a user runs it predicts the 4 from the 1 and 2. A straggler
node (its device time longer) shows as wait. Skipped where namespaces cannot be made."""

import json
import subprocess

import pytest
import yaml

from orchestrator.job import rates
from orchestrator.measuring import results
from orchestrator.running import emulated
from orchestrator.errors import UserError
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

ORCHESTRATOR = ROOT / ".venv/bin/orchestrator"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("accelerator-like")
    started = emulated.Emulated(state)
    try:
        started.up(4, rates.parse("200mbit", "rate"), share_cores=True, progress=lambda *_: None,
                   straggler={"node": 3, "compute_scale": 1.5})
    except UserError as err:
        pytest.skip(f"no emulated cluster here: {err}")
    try:
        yield started
    finally:
        started.down(progress=lambda *_: None)


def _job(tmp_path, name, workers, breakdown):
    job = {
        "name": name, "arms": [{"framework": "torch", "strategy": "ddp"}],
        "workload": {"model": "emulated", "params": {"layers": 8, "layer_mib": 0.125, "forward_ms": 10.0,
                                                     "backward_ms": 20.0, "optimizer_ms": 2.0}},
        "dataset": {"name": "synthetic", "num_samples": 2048}, "batch": {"per_worker": 32},
        "training": {"steps": 50, "warmup_steps": 10, "report_every": 25},
        "sweep": {"workers": workers}, "resources": {"cpus_per_worker": 1, "threads_per_worker": 1},
        "measure": {"breakdown": breakdown, "collective_repeats": 2}, "launcher": "actors",
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _run(cluster, *argv, timeout=600):
    return subprocess.run([str(ORCHESTRATOR), *argv], env={**cluster.ray_env(), **cluster.env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_a_sweep_of_one_and_two_sizes_four_workers_through_recommend(cluster, tmp_path):
    fit_dir, held_dir = tmp_path / "fit", tmp_path / "held"
    done = _run(cluster, "sweep", str(_job(tmp_path, "fit", [1, 2], True)), "--out", str(fit_dir),
                "--address", cluster.data["gcs_address"])
    assert done.returncode == 0, done.stderr[-3000:]
    done = _run(cluster, "sweep", str(_job(tmp_path, "held", [4], False)), "--out", str(held_dir),
                "--address", cluster.data["gcs_address"])
    assert done.returncode == 0, done.stderr[-3000:]
    two = next(r for r in results.load(fit_dir).ok if r.workers == 2)
    b = two["breakdown"]
    # real gradient buckets (1 MiB of gradient: DDP's first bucket of 1 MiB) crossed the shaped link
    assert b["gradient_bytes"] == 8 * (1 << 17) and b["bucket_bytes"] and b["backend"] == "gloo"
    assert 0.05e9 < 8 * b["collective"]["bus_gb_per_s"] * 1e9 < 0.2e9  # at most the 200 Mbit/s link
    assert b["backward_ms"] > 15  # the device time of the backward, timed apart
    done = _run(cluster, "recommend", str(fit_dir), "--bandwidth", "200mbit", "--measured-link", "200mbit",
                "--max-workers", "8")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((fit_dir / "report.json").read_text())
    (entry,) = report["fits"]
    predicted = next(p["throughput"] for p in entry["what_if"]["predicted"] if p["workers"] == 4)
    (measured,) = [r.throughput for r in results.load(held_dir).ok]
    # node 3 is the straggler (1.5x device time): 4 workers wait for it, which neither 1 nor 2 (nodes 0, 1)
    # measured -- the model, knowing nothing of it, predicts more than the 4 give, and not wildly so. The low
    # side is wider: the 4 run 2 ranks a core where the fit's ran 1, and the model's host-CPU terms past the
    # measured sharing overstate the step (docs/emulated.md, "What misses"); one CI run measured 0.88x.
    assert 0.8 * measured < predicted < 2.0 * measured, (predicted, measured)
    assert any("compute was emulated" in note for note in report["unit_notes"])
    assert "compute was emulated" in (fit_dir / "report.md").read_text()
