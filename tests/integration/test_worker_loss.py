"""Kill a real Ray Train worker process mid-trial: the trial restarts from its last checkpoint, redoes at
most `checkpoint_every` steps, ends at the planned step count, and records the failure and recovery."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from orchestrator.job import spec
from orchestrator.measuring import results
from orchestrator.running import scheduler

pytestmark = pytest.mark.ray

STEPS, EVERY = 600, 50


def train_worker_pids(title: bytes = b"ray::RayTrainWorker") -> list[int]:
    """Live training processes: Ray Train's workers, or those of launcher: actors (b"ray::TrainWorker")."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(title):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return sorted(pids)


def actor_ranks_training(since: list, ranks: int = 2, for_s: float = 3, title: bytes = b"ray::TrainWorker.run") -> list[int]:
    """launcher: actors keeps no checkpoints to wait for: the pids of its workers once ``ranks`` of them have
    been in the training function for ``for_s`` seconds, else []. ``since`` holds the state between polls."""
    pids = train_worker_pids(title)
    if len(pids) < ranks:
        since.clear()
        return []
    since[:] = since or [time.monotonic()]
    return pids if time.monotonic() - since[0] > for_s else []


def no_train_workers_left(title: bytes, within_s: float = 10) -> bool:
    deadline = time.monotonic() + within_s
    while train_worker_pids(title):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


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


def test_killed_actor_worker_fails_the_trial_at_once_and_names_it(ray_session, tmp_path):
    """launcher: actors never restarts: the trial fails as soon as a worker dies, naming its rank and pid,
    and the surviving rank is killed instead of waiting out the collective timeout."""
    job = {
        "name": "kill-actors", "arms": [{"framework": "torch", "strategy": "ddp"}],
        "workload": {"model": "mlp", "params": {"hidden": [64]}},
        "dataset": {"name": "synthetic", "num_samples": 1024}, "batch": {"per_worker": 32},
        "training": {"steps": 200000, "warmup_steps": 2, "report_every": 50},
        "sweep": {"workers": [2]}, "launcher": "actors",
        "reliability": {"collective_timeout_s": 300}, "deploy": {"export": False},
    }
    killed: list = []

    def kill_once_training(deadline_s: float = 240) -> None:
        deadline, since = time.monotonic() + deadline_s, []
        while time.monotonic() < deadline:
            pids = actor_ranks_training(since)
            if pids:
                os.kill(pids[-1], signal.SIGKILL)
                killed.append((pids[-1], time.time()))
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_once_training, daemon=True)
    killer.start()
    scheduler.sweep(spec.parse(job), tmp_path)
    ended = time.time()
    killer.join(timeout=5)
    assert killed, "no worker was killed"
    pid, killed_at = killed[0]
    (record,) = results.read(tmp_path)
    assert record["status"] == "failed"
    assert f"(pid {pid}) died" in record["error"] and "launcher: ray_train with reliability.max_failures" in record["error"]
    assert ended - killed_at < 15, ended - killed_at  # not the 300 s collective timeout
    assert no_train_workers_left(b"ray::TrainWorker")
