"""`orchestrator train` killed (driver and its embedded cluster, SIGKILL) after a checkpoint, then run again
with the same output directory: it resumes from the latest checkpoint, ends at the planned step, and says so."""

import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

ORCHESTRATOR = ROOT / ".venv/bin/orchestrator"


def test_a_killed_training_run_resumes_from_its_output_directory(tmp_path):
    data = yaml.safe_load((ROOT / "jobs/digits-mlp.yaml").read_text())
    data["training"].update(steps=6000, checkpoint_every=200, report_every=100)
    data["deploy"] = {"export": False}
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    command = [str(ORCHESTRATOR), "train", str(job), "--arm", "torch/ddp", "--workers", "1", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and not list((out / "ray_storage").glob("*/checkpoint_*")):
            assert first.poll() is None, first.stdout.read().decode()[-3000:]
            time.sleep(0.5)
        assert list((out / "ray_storage").glob("*/checkpoint_*")), "no checkpoint in 300 s"
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the embedded cluster it started
        first.wait(timeout=30)
    assert not (out / "training.json").exists()
    time.sleep(3)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    logs = done.stdout + done.stderr
    assert done.returncode == 0, logs[-3000:]
    assert "resuming train-digits-mlp-torch-ddp-w1 from its latest checkpoint" in logs
    record = json.loads((out / "training.json").read_text())
    assert record["status"] == "ok" and record["final_step"] == 6000
    assert record["started_at_step"] > 1 and (record["started_at_step"] - 1) % 200 == 0, record["started_at_step"]
    assert "Traceback" not in done.stderr
