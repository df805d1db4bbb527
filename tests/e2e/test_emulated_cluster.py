"""An emulated two-node cluster (orchestrator/running/emulated.py: network namespaces, tbf-shaped veth links): a
2-worker trial puts one worker on each node and its all-reduce crosses the shaped links at their rate; a
node's link cut in the middle of a trial fails that trial with the node and rank named, the sweep carries on,
and once the link is back a later trial uses the node again. Skipped where namespaces cannot be made."""

import json
import subprocess
import threading
import time

import pytest
import yaml

from orchestrator.job import rates
from orchestrator.running import emulated
from orchestrator.errors import UserError
from tests.conftest import ROOT
from tests.integration.test_worker_loss import train_worker_pids

pytestmark = pytest.mark.e2e

ORCHESTRATOR = ROOT / ".venv/bin/orchestrator"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("emulated")
    started = emulated.Emulated(state)
    try:
        started.up(2, rates.parse("300mbit", "rate"), progress=lambda *_: None)
    except UserError as err:
        pytest.skip(f"no emulated cluster here: {err}")
    try:
        yield started
    finally:
        started.down(progress=lambda *_: None)


def _job(tmp_path, name, workers, repeats=1, reuse_workers=True, **training):
    job = {
        "name": name, "arms": [{"framework": "torch", "strategy": "ddp"}],
        "workload": {"model": "mlp", "params": {"hidden": [256, 256]}}, "dataset": {"name": "synthetic", "num_samples": 4096},
        "batch": {"per_worker": 64, "scaling": "weak"},
        "training": {"steps": 60, "warmup_steps": 10, "report_every": 20, **training},
        "sweep": {"workers": workers, "repeats": repeats, "reuse_workers": reuse_workers},
        "resources": {"cpus_per_worker": 1},
        "measure": {"breakdown": True, "collective_repeats": 2}, "deploy": {"export": False}, "launcher": "actors",
        "reliability": {"max_failures": 0, "collective_timeout_s": 20, "placement_timeout_s": 10},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _sweep(cluster, job, out, timeout=600):
    return subprocess.run([str(ORCHESTRATOR), "sweep", str(job), "--out", str(out), "--address",
                           cluster.data["gcs_address"]], env={**cluster.ray_env(), **cluster.env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def test_one_worker_per_node_and_the_all_reduce_crosses_the_shaped_links(cluster, tmp_path):
    cluster.shape(rates.parse("300mbit", "rate"))
    done = _sweep(cluster, _job(tmp_path, "emulated-rate", [2]), tmp_path / "out")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (record,) = _records(tmp_path / "out")
    assert record["status"] == "ok" and len(record["nodes"]) == 2
    assert {w["node_ip"] for w in record["per_worker"]} == {n["ip"] for n in cluster.data["nodes"]}
    busbw_bps = 8e9 * record["breakdown"]["collective"]["busbw_peak_gb_per_s"]
    assert 0.8 * 300e6 <= busbw_bps <= 1.2 * 300e6, f"bus bandwidth {busbw_bps / 1e6:.0f} Mbit/s on 300 Mbit/s links"


def test_a_cut_link_fails_its_trial_naming_the_node_and_the_sweep_goes_on(cluster, tmp_path):
    cluster.shape(rates.parse("1gbit", "rate"))
    # Trials in order: w2 (node 1 cut during it), w1, then the link comes back, w2 (both nodes again), w1.
    # Fresh processes each trial, so that the repeats interleave (reused ones run back to back).
    job = _job(tmp_path, "emulated-cut", [2, 1], repeats=2, reuse_workers=False, steps=1500)
    out = tmp_path / "out"
    cut_at, restored = [], []

    def cut_then_restore():
        deadline = time.monotonic() + 500
        while time.monotonic() < deadline and not cut_at:
            if len(train_worker_pids(b"ray::TrainWorker.run")) >= 2:  # the 2-worker trial is training
                time.sleep(3)  # into the timed steps
                cluster.cut(1)
                cut_at.append(time.time())
            time.sleep(0.2)
        while time.monotonic() < deadline and not restored:
            if (out / "results.jsonl").exists() and len(_records(out)) >= 2:
                cluster.restore(1, progress=lambda *_: None)
                restored.append(time.time())
            time.sleep(0.5)

    helper = threading.Thread(target=cut_then_restore, daemon=True)
    helper.start()
    done = _sweep(cluster, job, out, timeout=900)
    helper.join(timeout=60)
    logs = done.stdout + done.stderr
    assert cut_at, "the link was never cut: the 2-worker trial did not start?\n" + logs[-3000:]
    assert done.returncode == 1, logs[-3000:]  # one trial failed; the reports list it
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    records = {(r["workers"], r["repeat"]): r for r in _records(out)}
    cut = records[(2, 0)]
    assert cut["status"] == "failed"
    ended = cut["started_at"] + cut["wall_time_s"]
    assert ended - cut_at[0] <= 20 + 10, f"failed {ended - cut_at[0]:.0f} s after the cut (collective_timeout_s 20)"
    node = cluster.data["nodes"][1]["ip"]
    assert "rank " in cut["error"] and node in cut["error"], cut["error"]  # the rank on the node cut off
    assert records[(1, 1)]["status"] == "ok"  # the sweep carried on with a trial that fits
    assert restored, "the link was never restored"
    again = records[(2, 1)]
    assert again["status"] == "ok", again.get("error")
    assert len(again["nodes"]) == 2  # the node is used again
