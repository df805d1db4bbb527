"""The Ray edge of a trial: run one TrialPlan through its launcher and return what each worker recorded."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from orchestrator import launchers, measure
from orchestrator.errors import TrialError
from orchestrator.launchers import harness
from orchestrator.plan import TrialPlan

@dataclass
class TrialRun:
    launched_wall: float
    ended_wall: float
    workers: list[dict]
    """One dict per worker process, from harness.train_loop_per_worker: rank, node, its stamped reports;
    every attempt's workers when the worker group was restarted after a failure."""
    files: dict[str, bytes]
    """What the workers wrote under their artifacts directory, by relative path (later attempts win)."""
    skipped_files: list[str]
    error: Exception | None = None
    """Why the trial failed (a TrialError where diagnosed); what it recorded and wrote until then is kept."""


def _recorder_class():
    import ray

    @ray.remote(num_cpus=0)
    class Recorder:
        def __init__(self):
            self.workers: dict[str, dict] = {}
            self.artifacts: list[tuple] = []

        # The recorder runs on the driver's node: its clock is the one the driver stamps a trial's launch
        # with, so every duration from launch is measured on one clock, whichever node a worker is on.
        def start(self, key: str, worker: dict) -> None:
            self.workers[key] = {**worker, "registered_wall": time.time(), "records": [], "finished_wall": None}

        def add(self, key: str, record: dict) -> None:
            self.workers[key]["records"].append({**record, "received_wall": time.time()})

        def finish(self, key: str, wall: float) -> None:
            self.workers[key]["finished_wall"] = wall

        def collective(self, key: str, backend: str, points: list) -> None:
            self.workers[key].update(collective=points, collective_backend=backend)

        def error(self, key: str, error: dict) -> None:
            self.workers[key]["error"] = error

        def files(self, key: str, files: dict, skipped: list) -> None:
            self.artifacts.append((self.workers[key]["started_wall"], files, skipped))

        def get_files(self) -> tuple[dict, list]:
            merged, skipped = {}, []
            for _, files, missed in sorted(self.artifacts, key=lambda item: item[0]):
                merged.update(files)
                skipped += missed
            return merged, skipped

        def get(self) -> list[dict]:
            return sorted(self.workers.values(), key=lambda w: (w["started_wall"], w["rank"]))

    return Recorder


def run(plan: TrialPlan, storage_path: str, watch=None, watch_every_s: float = 2.0) -> TrialRun:
    """Build the trainer the plan describes and fit it.

    A failure is returned in TrialRun.error, with what the workers recorded and wrote: a TrialError with a
    diagnosis when the workers could not be placed in time or a collective stalled, otherwise what the
    launcher raised."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # On the driver's node, so that losing another node never loses what the trial recorded.
    recorder = _recorder_class().options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        ray.get_runtime_context().get_node_id(), soft=False)).remote()
    loop_config = {
        "harness": {"entrypoint": plan.entrypoint, "sys_path": [os.getcwd()], "recorder": recorder,
                    # a user's function: the collective microbenchmark the harness runs after it
                    "collective": plan.breakdown if plan.execution is None else None},
        "train": plan.train_config,
    }
    trainer = launchers.for_plan(plan).make_trainer(plan, harness.train_loop_per_worker, loop_config, storage_path)
    launched = time.time()
    failure = None
    watching = _watch(recorder, watch, watch_every_s) if watch else None
    try:
        try:
            with launchers.controller_environment(plan):
                trainer.fit()
        except Exception as err:
            failure = err
        ended = time.time()
        files, skipped, workers = _collect(recorder, failed=failure is not None)
    finally:
        if watching:
            watching.set()
        ray.kill(recorder)
    error = None
    if failure is not None:
        error = diagnose(failure, plan, workers, _free_resources(), _alive_nodes()) or failure
        if error is not failure:
            error.__cause__ = failure
    return TrialRun(launched_wall=launched, ended_wall=ended, workers=workers, files=files, skipped_files=skipped,
                    error=error)


def _watch(recorder, watch, every_s: float):
    """Call ``watch(workers)`` with what the workers recorded so far, every ``every_s``, until the event is set
    (``orchestrator train``'s progress). A recorder that does not answer in time is asked again later."""
    import threading

    import ray

    stop = threading.Event()

    def loop():
        while not stop.wait(every_s):
            try:
                watch(ray.get(recorder.get.remote(), timeout=every_s * 5))
            except Exception:  # progress is a display: never let it stop training
                continue

    threading.Thread(target=loop, daemon=True, name="trial-watch").start()
    return stop


def _collect(recorder, failed: bool) -> tuple[dict, list, list[dict]]:
    """What the workers wrote and recorded. A failed trial's are kept too (the TensorBoard logs of a run that
    crashed are the ones worth reading); a recorder that cannot answer then loses them, not the failure."""
    import ray

    timeout = 60 if failed else None
    try:
        (files, skipped), workers = ray.get([recorder.get_files.remote(), recorder.get.remote()], timeout=timeout)
        return files, skipped, workers
    except Exception:
        if not failed:
            raise
        return {}, [], []


def diagnose(err: BaseException, plan: TrialPlan, workers: list[dict], free: dict[str, float],
             alive_nodes: set[str] | None = None) -> TrialError | None:
    """A one-line account of a placement timeout, a stalled collective, or a worker whose node Ray lost
    (``alive_nodes``: the node ids alive after the failure; None: not known); None for other failures."""
    if _caused_by(err, "WorkerGroupStartupTimeoutError") or _caused_by(err, "PlacementTimeout"):
        wanted = ", ".join(f"{k} {v:g}" for k, v in sorted(plan.resources_per_worker.items()))
        have = ", ".join(f"{k} {free.get(k, 0):g}" for k in sorted(plan.resources_per_worker))
        return TrialError(
            f"{plan.ray_workers} worker(s) of {{{wanted}}} could not be placed within "
            f"{plan.placement_timeout_s} s (reliability.placement_timeout_s); free now: {{{have}}}. "
            "Other jobs hold the resources or a node was lost: free them, lower sweep.workers, or raise "
            "reliability.placement_timeout_s on an autoscaling cluster",
            {"kind": "placement_timeout", "free": free},
        )
    lost = measure.lost_nodes(workers, alive_nodes)
    if lost:
        who = "; ".join(f"rank {w['rank']} on node {_where(w)} (last step {w['last_step']})" for w in lost)
        return TrialError(
            f"node lost: {who}: Ray stopped hearing from the node (it failed its health checks: the node or its "
            "network link went down) and its workers with it; the other ranks' collective could not go on",
            {"kind": "node_lost", "lost": lost},
        )
    stall = measure.stall(workers)
    if stall:
        who = "; ".join(
            f"rank {s['rank']} (pid {s['pid']} on node {_where(s)}, last step {s['last_step']})" for s in stall["stalled"]
        )
        waited = ", ".join(str(r) for r in stall["waited"])
        return TrialError(
            f"collective stalled: {who} never joined (it hung, or its node was cut off from the others); rank(s) {waited} gave up after "
            f"{plan.collective_timeout_s} s (reliability.collective_timeout_s): {stall['error']}",
            {"kind": "collective_stall", **stall},
        )
    return None


def _where(worker: dict) -> str:
    ip, host = worker.get("node_ip"), worker.get("hostname")
    return f"{ip} ({host})" if ip and host else (ip or host or "?")


def _alive_nodes() -> set[str] | None:
    import ray

    try:
        return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    except Exception:  # the diagnosis is a convenience: never let it hide the failure
        return None


def _caused_by(err: BaseException, name: str) -> bool:
    seen = set()
    stack = [err]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if type(e).__name__ == name or name in str(e).split(":", 1)[0]:
            return True
        stack += [e.__cause__, e.__context__, getattr(e, "controller_failure", None)]
        stack += list((getattr(e, "worker_failures", None) or {}).values())
    return False


def _free_resources() -> dict[str, float]:
    import ray

    try:
        return {k: float(v) for k, v in ray.available_resources().items() if not k.startswith("node:")}
    except Exception:
        return {}
