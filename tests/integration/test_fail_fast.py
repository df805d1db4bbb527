"""Fail fast instead of hanging: a trial that cannot be placed is refused within its placement timeout, and
a collective stalled by one rank (a real worker process, stopped with SIGSTOP) times out within the spec's
bound with an error that names that rank."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from orchestrator.job import spec
from orchestrator.measuring import results
from orchestrator.running import scheduler
from tests.integration.test_worker_loss import actor_ranks_training, no_train_workers_left, train_worker_pids

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("strategy, launcher", [("ddp", "ray_train"), ("horovod", "ray_train"), ("ddp", "actors")])
def test_trial_that_cannot_be_placed_is_refused_within_seconds(ray_session, tmp_path, strategy, launcher):
    ray = ray_session

    @ray.remote(num_cpus=2)
    class Squatter:  # another job holding every CPU: the cluster is big enough, but nothing is free
        def ping(self):
            return True

    squatter = Squatter.remote()
    ray.get(squatter.ping.remote())
    try:
        job = spec.parse({
            "name": "unplaceable", "arms": [{"framework": "torch", "strategy": strategy}],
            "workload": {"model": "mlp", "params": {"hidden": [16]}},
            "dataset": {"name": "synthetic", "num_samples": 256}, "batch": {"per_worker": 16},
            "training": {"steps": 20, "warmup_steps": 2, "report_every": 5},
            "sweep": {"workers": [1, 2]},
            "reliability": {"placement_timeout_s": 3}, "launcher": launcher,
        })
        started = time.monotonic()
        outcome = scheduler.sweep(job, tmp_path)
        elapsed = time.monotonic() - started
    finally:
        ray.kill(squatter)
    records = results.read(tmp_path)
    assert [r["workers"] for r in records] == [1, 2]  # the sweep went on after the first refusal
    for record in records:
        assert record["status"] == "failed"
        assert "could not be placed within 3 s (reliability.placement_timeout_s)" in record["error"], record["error"]
        assert "free now: {CPU 0}" in record["error"]
        # 3 s of waiting plus Ray Train's controller start-up; Ray's default would wait and retry forever.
        assert record["wall_time_s"] < 40, record["wall_time_s"]
    assert len(outcome.failed) == 2 and elapsed < 60
    # Nothing left pending that would take the CPUs once they are free (RayExecutor leaves its group behind).
    assert not [pg for pg in ray.util.placement_group_table().values() if pg["state"] == "PENDING"]


HOROVOD_RANK = b"ray::BaseHorovodWorker.execute"


def stop_a_worker_once_training(storage: Path, launcher: str, stopped: list, deadline_s: float = 240,
                                strategy: str = "ddp") -> None:
    """Ray Train: after the first checkpoint. Actors keep none: 3 s after both ranks entered the function
    (Horovod: 8 s, past its imports and rendezvous; MultiWorkerMirrored: 15 s, past TensorFlow's import and
    the strategy's barrier, into the timed steps)."""
    deadline = time.monotonic() + deadline_s
    since: list = []
    while time.monotonic() < deadline:
        if strategy == "horovod":
            pids = actor_ranks_training(since, for_s=8, title=HOROVOD_RANK)
            ready = bool(pids)
        elif launcher == "actors":
            pids = actor_ranks_training(since, for_s=15 if strategy == "multi_worker_mirrored" else 3)
            ready = bool(pids)
        else:
            pids = train_worker_pids()
            ready = len(pids) >= 2 and bool(list(storage.glob("*/checkpoint_*")))
        if ready:
            os.kill(pids[-1], signal.SIGSTOP)
            stopped.append((pids[-1], time.time()))
            return
        time.sleep(0.2)


@pytest.mark.parametrize("framework, strategy, launcher", [("torch", "ddp", "ray_train"),
                                                           ("tensorflow", "multi_worker_mirrored", "ray_train"),
                                                           ("tensorflow", "multi_worker_mirrored", "actors"),
                                                           ("torch", "ddp", "actors"),
                                                           ("torch", "horovod", "actors")])
def test_stalled_collective_times_out_and_names_the_stalled_rank(ray_session, tmp_path, framework, strategy, launcher):
    """Horovod: its stall inspector, or Gloo's timeout, ends the collective (not every stall: see the next test)."""
    timeout = 10
    job = spec.parse({
        "name": f"stall-{framework}", "arms": [{"framework": framework, "strategy": strategy}],
        "workload": {"model": "mlp", "params": {"hidden": [64]}},
        "dataset": {"name": "synthetic", "num_samples": 1024}, "batch": {"per_worker": 32},
        # Far more steps than can run before the stop: the trial can only end by timing out.
        "training": {"steps": 200000, "warmup_steps": 2, "report_every": 10, "checkpoint_every": 20},
        "sweep": {"workers": [2]},
        "reliability": {"collective_timeout_s": timeout}, "launcher": launcher, "deploy": {"export": False},
    })
    stopped: list = []
    stopper = threading.Thread(target=stop_a_worker_once_training, args=(tmp_path / "ray_storage", launcher, stopped),
                               kwargs={"strategy": strategy}, daemon=True)
    stopper.start()
    try:
        scheduler.sweep(job, tmp_path)
        ended = time.time()
    finally:
        stopper.join(timeout=5)
        for pid, _ in stopped:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
    assert stopped, "no worker was stopped: training ended before the first checkpoint?"
    pid, stopped_at = stopped[0]
    (record,) = results.read(tmp_path)
    assert record["status"] == "failed"
    error = record["error"]
    assert error.startswith("collective stalled: rank "), error
    assert f"(pid {pid} on " in error and "never joined" in error, error
    assert f"gave up after {timeout} s (reliability.collective_timeout_s)" in error, error
    assert record["diagnosis"]["stalled"][0]["pid"] == pid
    # The waiting rank gives up within the spec's bound (plus the step it was in; Horovod's inspector checks
    # every timeout / 2) ...
    assert record["diagnosis"]["gave_up_wall"] - stopped_at < timeout + (timeout // 2 if strategy == "horovod" else 0) + 5
    # ... and the trial ends once Ray Train has torn the group down (it waits up to 30 s for a stopped
    # worker to leave the torch process group); the actor launcher and Horovod's kill both ranks at once.
    assert ended - stopped_at < timeout + (60 if launcher == "ray_train" else 15), ended - stopped_at
    assert no_train_workers_left(HOROVOD_RANK if strategy == "horovod" else b"ray::TrainWorker")


def test_horovod_stall_the_inspector_misses_ends_once_no_rank_reports(ray_session, tmp_path):
    """A user's Horovod function whose rank 1 never joins the first collective: Horovod's stall inspector left
    rank 0 waiting for good. The sweep ends the trial once no rank has been heard from for the timeout and
    the inspector's next check (10 + 5 + 5 s), shuts the executor down, and goes on."""
    job = spec.parse({
        "name": "stall-unseen", "arms": [{"framework": "torch", "strategy": "horovod",
                                          "entrypoint": "tests.integration.stalling:train_func"}],
        "workload": {"entrypoint": "tests.integration.stalling:train_func"},
        "sweep": {"workers": [2]}, "reliability": {"collective_timeout_s": 10},
    })
    started = time.monotonic()
    scheduler.sweep(job, tmp_path)
    elapsed = time.monotonic() - started
    (record,) = results.read(tmp_path)
    assert record["status"] == "failed"
    error = record["error"]
    assert error.startswith("collective stalled: no rank reported for "), error
    assert ("over 20 s (reliability.collective_timeout_s and Horovod's stall check); last heard: rank 0 before "
            "its first report, rank 1 before its first report") in error, error
    assert elapsed < 90, elapsed
    assert no_train_workers_left(b"ray::BaseHorovodWorker")


def stop_a_rank_before_its_rendezvous(title: bytes, stopped: list, deadline_s: float = 240) -> None:
    """SIGSTOP the last rank as soon as both ranks are in the training function: it is still importing its
    framework, before MultiWorkerMirroredStrategy's barrier or hvd.init."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        pids = actor_ranks_training([], for_s=-1, title=title)
        if pids:
            os.kill(pids[-1], signal.SIGSTOP)
            stopped.append((pids[-1], time.time()))
            return
        time.sleep(0.05)


@pytest.mark.parametrize("framework, strategy, title", [
    ("tensorflow", "multi_worker_mirrored", b"ray::TrainWorker.run"),
    ("torch", "horovod", HOROVOD_RANK),
])
def test_a_rank_stopped_before_the_first_rendezvous_is_named_within_the_timeout(ray_session, tmp_path, framework,
                                                                                strategy, title):
    """Before the first collective neither MultiWorkerMirrored's bound nor Horovod's stall inspector ends the
    wait (Ray noticed the stopped process after its RPC keepalive, ~7 minutes; Horovod's rank died with a bare
    "actor is dead"): the launcher's watch names the rank within collective_timeout_s of the other's wait."""
    timeout = 10
    job = spec.parse({
        "name": f"stall-early-{framework}", "arms": [{"framework": framework, "strategy": strategy}],
        "workload": {"model": "mlp", "params": {"hidden": [16]}},
        "dataset": {"name": "synthetic", "num_samples": 256}, "batch": {"per_worker": 16},
        "training": {"steps": 50, "warmup_steps": 2, "report_every": 10},
        "sweep": {"workers": [2]}, "reliability": {"collective_timeout_s": timeout}, "launcher": "actors",
        "deploy": {"export": False}, "measure": {"breakdown": False},
    })
    stopped: list = []
    stopper = threading.Thread(target=stop_a_rank_before_its_rendezvous, args=(title, stopped), daemon=True)
    stopper.start()
    try:
        scheduler.sweep(job, tmp_path)
        ended = time.time()
    finally:
        stopper.join(timeout=5)
        for pid, _ in stopped:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
    assert stopped, "no rank was stopped"
    pid, stopped_at = stopped[0]
    (record,) = results.read(tmp_path)
    assert record["status"] == "failed"
    error = record["error"]
    diagnosis = record["diagnosis"]
    (stalled,) = diagnosis["stalled"]
    assert stalled["pid"] == pid and diagnosis["waited"] == [1 - stalled["rank"]], diagnosis
    # Named with its pid (and node, where it registered before it was stopped).
    assert error.startswith(f"collective stalled: rank {stalled['rank']} ("), error
    assert f"pid {pid}" in error and "never joined" in error, error
    assert f"gave up after {timeout} s (reliability.collective_timeout_s)" in error, error
    assert diagnosis["waited_s"] < timeout + 10, diagnosis
    # The stopped rank's framework import and the other's (a few seconds each) come before its wait.
    assert ended - stopped_at < timeout + 40, ended - stopped_at
    assert no_train_workers_left(title)
