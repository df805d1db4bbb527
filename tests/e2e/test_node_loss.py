"""Lose a node of a real two-node Ray cluster in the middle of a sweep: the trial that had a worker there
fails with an error that says why, the sweep carries on with the trials that still fit, and the reports
list the failed trial."""

import json
import subprocess
import threading
import time

import pytest
import yaml

from tests.conftest import ROOT
from tests.ray_head import BIN, two_nodes

pytestmark = pytest.mark.e2e


@pytest.fixture()
def cluster():
    with two_nodes() as started:
        yield started


def test_sweep_reports_the_trial_a_lost_node_failed_and_carries_on(cluster, tmp_path):
    job = {
        "name": "node-loss", "arms": [{"framework": "torch", "strategy": "ddp"}],
        "workload": {"model": "mlp", "params": {"hidden": [256, 256]}},
        "dataset": {"name": "synthetic", "num_samples": 2048}, "batch": {"per_worker": 64},
        "training": {"steps": 1500, "warmup_steps": 5, "report_every": 25, "checkpoint_every": 250},
        # Trials in order: w1, w2 (one worker on each node: the node is lost during it), w1 again (fits on
        # the head alone), w2 again (cannot be placed any more).
        "sweep": {"workers": [1, 2], "repeats": 2},
        "reliability": {"max_failures": 1, "placement_timeout_s": 5}, "deploy": {"export": False},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    out = tmp_path / "out"
    lost: list = []

    def lose_the_second_node_after_a_checkpoint():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not lost:
            if list((out / "ray_storage").glob("*-w2-r0-*/checkpoint_*")):
                cluster.kill_node(1)
                lost.append(time.time())
            time.sleep(0.2)

    killer = threading.Thread(target=lose_the_second_node_after_a_checkpoint, daemon=True)
    killer.start()
    done = subprocess.run(
        [str(BIN / "orchestrator"), "sweep", str(tmp_path / "job.yaml"), "--out", str(out),
         "--address", cluster.gcs_address],
        env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    killer.join(timeout=5)
    logs = done.stdout + done.stderr
    assert lost, "the node was never lost: the 2-worker trial ended before its first checkpoint?\n" + logs[-3000:]
    assert done.returncode == 1, logs[-3000:]  # some trials failed; the reports still list them
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    records = {tuple(r["trial_id"].rsplit("-", 2)[-2:]): r
               for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert sorted(records) == [("w1", "r0"), ("w1", "r1"), ("w2", "r0"), ("w2", "r1")]
    assert records["w1", "r0"]["status"] == "ok", records["w1", "r0"].get("error")
    # The trial that lost a worker with the node restarted (max_failures 1), waited placement_timeout_s for
    # a second CPU that had gone, and gave up; so did the next 2-worker trial, at once.
    for key in (("w2", "r0"), ("w2", "r1")):
        assert records[key]["status"] == "failed"
        assert "could not be placed within 5 s" in records[key]["error"], records[key]["error"]
        assert records[key]["diagnosis"]["kind"] == "placement_timeout"
    assert records["w2", "r1"]["wall_time_s"] < 40
    # ... and the sweep carried on with what still fits.
    assert records["w1", "r1"]["status"] == "ok", records["w1", "r1"].get("error")
    assert records["w1", "r1"]["final_step"] == 1500
    report = json.loads((out / "report.json").read_text())
    failed = {t["trial_id"] for t in report["failed_trials"]}
    assert failed == {records["w2", "r0"]["trial_id"], records["w2", "r1"]["trial_id"]}
    assert records["w2", "r0"]["trial_id"] in (out / "report.md").read_text()
