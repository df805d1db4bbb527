"""Worker processes reused across repeats (launcher: actors, sweep.reuse_workers; issue 22), on a real local
Ray cluster: a reused repeat measures what a fresh process measures, and a worker killed in a reused group
fails only its own trial."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from orchestrator.job import spec
from orchestrator.measuring import results
from orchestrator.running import scheduler
from tests.integration.test_worker_loss import no_train_workers_left, train_worker_pids

pytestmark = pytest.mark.ray

JOB = {
    "name": "reuse",
    "arms": [{"framework": "torch", "strategy": "ddp"}, {"framework": "tensorflow", "strategy": "multi_worker_mirrored"}],
    "workload": {"model": "mlp", "params": {"hidden": [64, 64]}},
    "dataset": {"name": "digits"},
    "batch": {"per_worker": 32},
    "training": {"steps": 60, "warmup_steps": 10, "report_every": 30},
    "sweep": {"workers": [2], "repeats": 3},
    "resources": {"cpus_per_worker": 1},
    "deploy": {"export": False},
    "measure": {"breakdown": False},
}


def by_arm(out):
    found = results.load(out).records
    assert all(r.ok for r in found), [r.error for r in found]
    arms = {}
    for r in found:
        arms.setdefault(r.arm, []).append(r)
    return {arm: sorted(rs, key=lambda r: r.repeat) for arm, rs in arms.items()}


def os_threads(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


# Most OS threads any worker process held while the reused sweep ran (sampled by `sweeps`).
PEAK_THREADS: list[int] = []


@pytest.fixture(scope="module")
def sweeps(ray_session, tmp_path_factory):
    """The same plans with reused workers (the default) and with fresh processes for every trial: their dirs."""
    reused, fresh = tmp_path_factory.mktemp("reused"), tmp_path_factory.mktemp("fresh")
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            PEAK_THREADS.append(max([os_threads(pid) for pid in train_worker_pids(b"ray::TrainWorker")] or [0]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        scheduler.sweep(spec.parse(JOB), reused)
    finally:
        done.set()
        sampler.join()
    scheduler.sweep(spec.parse({**JOB, "sweep": {**JOB["sweep"], "reuse_workers": False}}), fresh)
    return reused, fresh


@pytest.fixture(scope="module")
def both(sweeps):
    return by_arm(sweeps[0]), by_arm(sweeps[1])


def test_repeats_share_processes_and_the_record_says_so(both):
    reused, fresh = both
    for arm, trials in reused.items():
        assert all(t.get("launcher") == "actors" for t in trials)
        uses = [t["worker_reuse"] for t in trials]
        assert [u["use"] for u in uses] == [1, 2, 3] and len({u["group"] for u in uses}) == 1, uses
        assert uses[2]["shared_with"] == [trials[0].trial_id, trials[1].trial_id]
        pids = [t["worker_reuse"]["pids"] for t in trials]
        assert pids[0] == pids[1] == pids[2], pids
    for arm, trials in fresh.items():
        uses = [t["worker_reuse"] for t in trials]
        assert [u["use"] for u in uses] == [1, 1, 1] and len({u["group"] for u in uses}) == 3, uses


def test_each_reused_repeat_trains_from_scratch(both):
    """A fresh model, optimiser and data order each repeat: the same seed gives the same loss and accuracy as
    a fresh process does, and each repeat has a TensorBoard run of its own with every step in it."""
    reused, fresh = both
    for arm in reused:
        seen = {(t["final_loss"], t.test_accuracy) for t in reused[arm] + fresh[arm]}
        assert len(seen) == 1, (arm, seen)
        scalars = [t["tensorboard"]["scalars"] for t in reused[arm]]
        assert scalars[0] == scalars[1] == scalars[2] and len(reused[arm][2]["tensorboard"]["event_files"]) == 1


def test_reused_workers_do_not_pile_up_threads(both):
    """reliability.collective_timeout_s through TensorFlow's CommunicationOptions left a thread sleeping out the
    timeout for every collective: about 1,100 threads a TensorFlow worker by the third repeat of this job, and
    on longer jobs slower repeats, then a worker aborted for want of thread ids. One watchdog thread now."""
    assert PEAK_THREADS and max(PEAK_THREADS) > 0, "no worker process was sampled"
    assert max(PEAK_THREADS) < 500, max(PEAK_THREADS)


def test_reused_throughput_agrees_with_fresh_processes(both):
    """Within the run-to-run spread: the means of the two ways differ by less than the repeats' range of the
    two together (and by less than half, whatever the spread: 2 shared cores)."""
    reused, fresh = both
    for arm in reused:
        a = [t.throughput for t in reused[arm]]
        b = [t.throughput for t in fresh[arm]]
        gap = abs(sum(a) / len(a) - sum(b) / len(b))
        assert gap <= max(max(a + b) - min(a + b), 0.5 * min(sum(a) / len(a), sum(b) / len(b))), (arm, a, b)


def test_the_report_says_where_the_sweeps_time_went(sweeps):
    """Every trial's parts add up to its wall time; one sweep invocation, and its own time before each trial
    less than a trial's; a reused repeat reaches step 1 in a fraction of what a fresh group takes."""
    for out in sweeps:
        lines = results.read(out)
        assert len({line["sweep_run"]["id"] for line in lines}) == 1
        before = [line["sweep_run"]["before_s"] for line in lines]
        # the sweep's own time (planning on a cluster already up, closing one group before the next) is less
        # than a fresh group's trial before any trial, and a small part of the trials' time in all; a reused
        # repeat of 60 steps may itself take less than closing a group does on 2 busy cores
        walls = [line["wall_time_s"] for line in lines]
        assert all(0 <= b < max(walls) for b in before), (before, walls)
        assert sum(before) < 0.5 * sum(walls), (before, walls)
        for line in lines:
            parts = results.time_parts(line)
            assert sum(parts[k] for k in ("to_first_step_s", "training_s", "after_training_s")) == \
                pytest.approx(line["wall_time_s"], abs=1e-6)
        data = json.loads((out / "report.json").read_text())["sweep_time"]
        assert data["training_s"] > 0 and 0 < data["training_share"] < 1 and data["sentence"] in (out / "report.md").read_text()
    spent = {name: json.loads((out / "report.json").read_text())["sweep_time"] for name, out in zip(("reused", "fresh"), sweeps)}
    assert spent["reused"]["reused_trials"] == 4 and spent["reused"]["fresh_worker_starts"] == 2
    assert spent["fresh"]["reused_trials"] == 0 and spent["fresh"]["fresh_worker_starts"] == 6
    per_fresh = spent["reused"]["fresh_to_first_step_s"] / 2
    assert spent["reused"]["reused_to_first_step_s"] / 4 < 0.5 * per_fresh, spent["reused"]


def test_a_worker_killed_in_a_reused_group_fails_only_its_trial(ray_session, tmp_path):
    job = {
        "name": "reuse-kill", "arms": [{"framework": "torch", "strategy": "ddp"}],
        "workload": {"model": "mlp", "params": {"hidden": [64]}},
        "dataset": {"name": "synthetic", "num_samples": 1024}, "batch": {"per_worker": 32},
        "training": {"steps": 2000, "warmup_steps": 2, "report_every": 500},
        "sweep": {"workers": [2], "repeats": 3}, "reliability": {"collective_timeout_s": 300},
        "deploy": {"export": False}, "measure": {"breakdown": False},
    }
    killed: list = []

    def kill_in_the_second_repeat(deadline_s: float = 240) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline and not results.read(tmp_path):
            time.sleep(0.1)
        time.sleep(1.0)  # repeat 2 is training in repeat 1's processes
        pids = train_worker_pids(b"ray::TrainWorker")
        if len(pids) == 2 and len(results.read(tmp_path)) == 1:
            os.kill(pids[-1], signal.SIGKILL)
            killed.append(pids[-1])

    killer = threading.Thread(target=kill_in_the_second_repeat, daemon=True)
    killer.start()
    scheduler.sweep(spec.parse(job), tmp_path)
    killer.join(timeout=5)
    assert killed, "the second repeat ended before a worker could be killed in it"
    first, second, third = sorted(results.read(tmp_path), key=lambda r: r["repeat"])
    assert first["status"] == "ok" and third["status"] == "ok", (first.get("error"), third.get("error"))
    assert second["status"] == "failed" and f"(pid {killed[0]}) died" in second["error"]
    assert second["worker_reuse"]["group"] == first["worker_reuse"]["group"]
    # the next repeat started a fresh group: new processes, first use
    assert third["worker_reuse"]["use"] == 1 and third["worker_reuse"]["group"] != first["worker_reuse"]["group"]
    assert killed[0] in second["worker_reuse"]["pids"] and killed[0] not in third["worker_reuse"]["pids"]
    assert no_train_workers_left(b"ray::TrainWorker")
