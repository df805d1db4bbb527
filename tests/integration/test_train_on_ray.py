"""`orchestrator train` on the shared local Ray cluster: digits to 0.9 test accuracy at 1 and 2 workers in both
frameworks (timed to the target, stopping there), and a killed worker that costs at most checkpoint_every
steps."""

import json
import os
import signal
import threading
import time

import pytest
import yaml

from orchestrator.job import spec
from orchestrator.running import training
from tests.conftest import ROOT
from tests.integration.test_worker_loss import train_worker_pids

pytestmark = pytest.mark.ray


def _job(**training_changes):
    data = yaml.safe_load((ROOT / "jobs/digits-mlp.yaml").read_text())
    data["training"].update(training_changes)
    data["deploy"] = {"export": False}
    return spec.parse(data)


@pytest.mark.parametrize("arm", ["torch/ddp", "tensorflow/multi_worker_mirrored"])
def test_train_reaches_the_target_at_1_and_2_workers_and_records_it(ray_session, tmp_path, arm):
    job = _job(steps=1500, target={"metric": "test_accuracy", "value": 0.9, "every": 25})
    seen = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        record = training.run(job, arm, workers, str(out), say=lambda *_: None, watch=seen.append)
        assert record["status"] == "ok", record.get("error")
        target = record["target"]
        assert target["reached"] and target["reached_value"] >= 0.9, target
        # stopped at the evaluation that met it, long before the 1500 planned steps
        assert record["final_step"] == target["steps"] < 1500 and target["steps"] % 25 == 0
        assert record["test_accuracy"] >= 0.9 and target["seconds"] > 0
        assert record["workers"] == workers and record["launcher"] == "ray_train" and record["kind"] == "training"
        written = json.loads((out / training.RECORD).read_text())
        assert written["trial_id"] == record["trial_id"] and written["target"] == target
        assert list((out / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard event files"
        # a rerun of a finished run does not train again
        again = training.run(job, arm, workers, str(out), say=lambda *_: None)
        assert again["started_at"] == record["started_at"]
    assert seen, "the progress callback was never called"


def test_a_killed_worker_costs_at_most_checkpoint_every_steps(ray_session, tmp_path):
    every = 100
    job = _job(steps=4000, checkpoint_every=every, report_every=50)
    killed = []

    def kill_rank_1_after_a_checkpoint(workers):
        if killed:
            return
        steps = [r["metrics"].get("checkpoint_step") for w in workers for r in w["records"]]
        if any(steps) and len(train_worker_pids()) >= 2:
            pid = next(w["pid"] for w in workers if w["rank"] == 1)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    record = training.run(job, "torch/ddp", 2, str(tmp_path / "out"), say=lambda *_: None,
                          watch=kill_rank_1_after_a_checkpoint)
    assert killed, "no worker was killed: the run ended before its first checkpoint?"
    assert record["status"] == "ok", record.get("error")
    assert record["failures"] >= 1 and record["final_step"] == 4000
    (event, *_) = record["failure_events"]
    assert event["resumed_after_step"] % every == 0 and event["resumed_after_step"] >= every, event
    assert 0 <= event["steps_redone_at_least"] <= every, event
