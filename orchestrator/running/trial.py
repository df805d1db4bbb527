"""The Ray edge of a trial: run one TrialPlan through its launcher and return what each worker recorded."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

from orchestrator.measuring import measure
from orchestrator.running import launchers
from orchestrator.errors import TrialError
from orchestrator.running.launchers import harness
from orchestrator.job.plan import TrialPlan

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
    reuse: dict | None = None
    """launcher: actors: the worker processes it ran in (group id, which use of them, the trials before it)."""


def _recorder_class():
    import ray

    @ray.remote(num_cpus=0)
    class Recorder:
        """What every worker of every trial of a sweep records, by trial (a run's own token, so that a late
        message of a trial already collected never lands in another one)."""

        def __init__(self):
            self.trials: dict[str, dict] = {}
            self.dropped: set[str] = set()

        def _trial(self, trial: str) -> dict | None:
            if trial in self.dropped:
                return None
            return self.trials.setdefault(trial, {"workers": {}, "artifacts": []})

        def _worker(self, trial: str, key: str) -> dict | None:
            held = self._trial(trial)
            return None if held is None else held["workers"].get(key)

        # The recorder runs on the driver's node: its clock is the one the driver stamps a trial's launch
        # with, so every duration from launch is measured on one clock, whichever node a worker is on.
        def start(self, trial: str, key: str, worker: dict) -> None:
            held = self._trial(trial)
            if held is not None:
                held["workers"][key] = {**worker, "registered_wall": time.time(), "records": [], "finished_wall": None}

        def add(self, trial: str, key: str, record: dict) -> None:
            worker = self._worker(trial, key)
            if worker is not None:
                worker["records"].append({**record, "received_wall": time.time()})

        def phase(self, trial: str, key: str, name: str) -> None:
            """A worker reached ``name`` (reporting.phase), stamped on this clock: ``<name>_wall``."""
            worker = self._worker(trial, key)
            if worker is not None:
                worker.setdefault(f"{name}_wall", time.time())

        def update(self, trial: str, key: str, fields: dict) -> None:
            """A worker's end (finished_wall), error, or collective microbenchmark (collective, its backend)."""
            worker = self._worker(trial, key)
            if worker is not None:
                worker.update(fields)

        def files(self, trial: str, key: str, files: dict, skipped: list) -> None:
            worker = self._worker(trial, key)
            if worker is not None:
                self.trials[trial]["artifacts"].append((worker["started_wall"], files, skipped))

        def get_files(self, trial: str) -> tuple[dict, list]:
            merged, skipped = {}, []
            for _, files, missed in sorted(self.trials.get(trial, {}).get("artifacts", []), key=lambda item: item[0]):
                merged.update(files)
                skipped += missed
            return merged, skipped

        def get(self, trial: str) -> list[dict]:
            workers = self.trials.get(trial, {}).get("workers", {})
            return sorted(workers.values(), key=lambda w: (w["started_wall"], w["rank"]))

        def heard(self, trial: str) -> dict:
            """When the trial's workers were last heard from (registered or reported, on this clock), and
            whether any has ended (finished or failed): a launcher's stall watch, cheaper than get()."""
            workers = self.trials.get(trial, {}).get("workers", {}).values()
            stamps = [w["registered_wall"] for w in workers] + [w["records"][-1]["received_wall"]
                                                                for w in workers if w["records"]]
            return {"last_wall": max(stamps, default=None),
                    "ended": any(w.get("finished_wall") or w.get("error") for w in workers),
                    "steps": {w["rank"]: measure.last_step(w) for w in workers},
                    "now_wall": time.time(),
                    "workers": [measure.rendezvous_view(w) for w in workers]}

        def drop(self, trial: str) -> None:
            self.trials.pop(trial, None)
            self.dropped.add(trial)

        def ping(self) -> bool:
            return True

    return Recorder


class Runner:
    """The Ray side of a sweep: one recorder actor for all its trials, and the worker processes the last trial
    left for the next trial of its worker group (plan.worker_group). A lone trial (``run`` below,
    ``orchestrator train``) has one of its own."""

    def __init__(self):
        self.recorder = None
        self.kept = launchers.Kept()

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _recorder(self):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self.recorder is not None:
            try:
                ray.get(self.recorder.ping.remote(), timeout=30)
                return self.recorder
            except Exception:  # lost (killed, out of memory): a new one from this trial on
                self.recorder = None
        # On the driver's node, so that losing another node never loses what the trials recorded.
        self.recorder = _recorder_class().options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)).remote()
        return self.recorder

    def run(self, plan: TrialPlan, storage_path: str, watch=None, watch_every_s: float = 2.0) -> TrialRun:
        """Build the trainer the plan describes and fit it.

        A failure is returned in TrialRun.error, with what the workers recorded and wrote: a TrialError with a
        diagnosis when the workers could not be placed in time or a collective stalled, otherwise what the
        launcher raised."""
        if plan.worker_group is None:  # kept processes hold resources that this trial may need
            self.kept.release()
        recorder = self._recorder()
        token = f"{plan.trial_id}-{uuid.uuid4().hex[:8]}"
        loop_config = {
            "harness": {"entrypoint": plan.entrypoint, "sys_path": [os.getcwd()], "recorder": recorder, "trial": token,
                        # a user's function: the collective microbenchmark the harness runs after it
                        "collective": plan.breakdown if plan.execution is None else None},
            "train": plan.train_config,
        }
        extra = {"kept": self.kept} if plan.worker_group is not None else {}
        trainer = launchers.for_plan(plan).make_trainer(plan, harness.train_loop_per_worker, loop_config,
                                                        storage_path, **extra)
        launched = time.time()
        failure = None
        watching = _watch(recorder, token, watch, watch_every_s) if watch else None
        try:
            try:
                with launchers.controller_environment(plan):
                    trainer.fit()
            except Exception as err:
                failure = err
            ended = time.time()
            files, skipped, workers = _collect(recorder, token, failed=failure is not None)
        finally:
            if watching:
                watching.set()
            recorder.drop.remote(token)
        error = None
        if failure is not None:
            error = diagnose(failure, plan, workers, _free_resources(), _alive_nodes(),
                             pids=(getattr(trainer, "reuse", None) or {}).get("pids")) or failure
            if error is not failure:
                error.__cause__ = failure
        return TrialRun(launched_wall=launched, ended_wall=ended, workers=workers, files=files, skipped_files=skipped,
                        error=error, reuse=getattr(trainer, "reuse", None))

    def close(self) -> None:
        import ray

        self.kept.release()
        if self.recorder is not None:
            try:
                ray.kill(self.recorder)
            except Exception:  # already gone
                pass
            self.recorder = None


def run(plan: TrialPlan, storage_path: str, watch=None, watch_every_s: float = 2.0) -> TrialRun:
    """One trial on a Runner of its own: nothing is kept after it."""
    with Runner() as runner:
        return runner.run(plan, storage_path, watch, watch_every_s)


def _watch(recorder, token: str, watch, every_s: float):
    """Call ``watch(workers)`` with what the workers recorded so far, every ``every_s``, until the event is set
    (``orchestrator train``'s progress). A recorder that does not answer in time is asked again later."""
    import threading

    import ray

    stop = threading.Event()

    def loop():
        while not stop.wait(every_s):
            try:
                watch(ray.get(recorder.get.remote(token), timeout=every_s * 5))
            except Exception:  # progress is a display: never let it stop training
                continue

    threading.Thread(target=loop, daemon=True, name="trial-watch").start()
    return stop


def _collect(recorder, token: str, failed: bool) -> tuple[dict, list, list[dict]]:
    """What the workers wrote and recorded. A failed trial's are kept too (the TensorBoard logs of a run that
    crashed are the ones worth reading); a recorder that cannot answer then loses them, not the failure."""
    import ray

    timeout = 60 if failed else None
    try:
        (files, skipped), workers = ray.get([recorder.get_files.remote(token), recorder.get.remote(token)],
                                            timeout=timeout)
        return files, skipped, workers
    except Exception:
        if not failed:
            raise
        return {}, [], []


def diagnose(err: BaseException, plan: TrialPlan, workers: list[dict], free: dict[str, float],
             alive_nodes: set[str] | None = None, pids: list[int] | None = None) -> TrialError | None:
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
    views = [measure.rendezvous_view(w) for w in (measure.attempts(workers)[-1] if workers else [])]
    # The post-mortem of a wait at the first rendezvous that its own timeout (Gloo's, Horovod's) ended, or
    # that killed the waiting process: the launcher's watch would have named it a moment later.
    # Its wait is timed to when the waiting rank gave up (its error), or to now where it died without one.
    gave_up = min((w["error"]["wall"] for w in workers if isinstance(w.get("error"), dict) and w["error"].get("wall")),
                  default=time.time())
    early = measure.rendezvous_stall(views, plan.ray_workers, 0.9 * plan.collective_timeout_s, gave_up,
                                     after_failure=True, pids=pids)
    if early and not isinstance(err, TrialError):
        what = launchers.RENDEZVOUS.get(plan.strategy, "the first collective")
        return TrialError(measure.rendezvous_message(early, what, plan.collective_timeout_s),
                          {"kind": "collective_stall", **early})
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
