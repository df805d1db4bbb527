"""Kill a real Ray Train worker process mid-trial: the trial restarts from its last checkpoint, redoes at
most `checkpoint_every` steps, ends at the planned step count, and records the failure and recovery."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from orchestrator import results, scheduler, spec

pytestmark = pytest.mark.ray

STEPS, EVERY = 600, 50


def train_worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return sorted(pids)


def kill_a_worker_after_first_checkpoint(storage: Path, killed: list, deadline_s: float = 240) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if list(storage.glob("*/checkpoint_*")):
            pids = train_worker_pids()
            if pids:
                os.kill(pids[-1], signal.SIGKILL)
                killed.append(pids[-1])
                return
        time.sleep(0.2)


@pytest.mark.parametrize("framework, strategy", [("torch", "ddp"), ("tensorflow", "multi_worker_mirrored")])
def test_killed_worker_resumes_from_checkpoint(ray_session, tmp_path, framework, strategy):
    job = {
        "name": f"kill-{framework}", "arms": [{"framework": framework, "strategy": strategy}],
        "workload": {"model": "mlp", "params": {"hidden": [512, 512]}},
        "dataset": {"name": "synthetic", "num_samples": 2048}, "batch": {"per_worker": 64},
        "training": {"steps": STEPS, "warmup_steps": 10, "report_every": 25, "checkpoint_every": EVERY},
        "sweep": {"workers": [2]},
        "reliability": {"max_failures": 2, "collective_timeout_s": 60}, "deploy": {"export": False},
    }
    killed: list = []
    killer = threading.Thread(target=kill_a_worker_after_first_checkpoint, args=(tmp_path / "ray_storage", killed), daemon=True)
    killer.start()
    scheduler.sweep(spec.parse(job), tmp_path)
    killer.join(timeout=5)
    assert killed, "no worker was killed: training ended before the first checkpoint?"
    (record,) = results.read(tmp_path)
    assert record["status"] == "ok", record.get("error")
    assert record["failures"] == 1
    (event,) = record["failure_events"]
    assert event["recovery_s"] > 0
    assert event["resumed_after_step"] % EVERY == 0
    assert event["steps_redone_at_least"] <= EVERY
    assert record["final_step"] == STEPS
    assert record["samples_per_sec"] > 0
