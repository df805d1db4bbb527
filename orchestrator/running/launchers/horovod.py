"""Horovod on Ray, for torch and TensorFlow: ``horovod.ray.RayExecutor`` (legacy, optional).

Ray Train V2 deprecated its HorovodTrainer, and Horovod's last release (0.28.1, 2023) needs small patches to
build against current torch and TensorFlow (``make horovod``). RayExecutor still works with Ray 2.60: it
gang-schedules one actor per worker in a placement group, sets up Gloo rendezvous between them, and runs
the same training function as the other launchers; the workload wraps its optimiser (torch) or all-reduces
its gradients (TensorFlow) with Horovod.

Differences from the Ray Train launchers, shown in the plan:
* no restarts: a failed worker fails the trial (``reliability.max_failures`` does not apply);
* a stalled collective is ended by Horovod's stall inspector after ``reliability.collective_timeout_s``, or,
  where the inspector does not see it, when no rank has reported for that long and its next check
  (``wait_heard``);
* in a sweep, the repeats of one worker count run on one executor's actors (``sweep.reuse_workers``), as
  launcher: actors does: ``hvd.init()`` in a process where Horovod is already up keeps its Gloo context, so a
  repeat builds a fresh model, optimiser and data stream and shares only the processes and the rendezvous.
"""

from __future__ import annotations

import os
import time
import uuid

from orchestrator.errors import UserError
from orchestrator.running.launchers import KeptRun, PlacementTimeout, worker_processes

VERSION = "0.28.1"


def check_installed() -> None:
    try:
        import horovod
    except ImportError:
        raise UserError(
            "strategy horovod needs Horovod, which is not installed in this environment: run 'make horovod' "
            f"(builds Horovod {VERSION} against the installed torch and TensorFlow once, about 5 minutes)"
        ) from None
    if horovod.__version__ != VERSION:
        raise UserError(f"strategy horovod is tested with Horovod {VERSION}, found {horovod.__version__}: run 'make horovod'")


def describe(plan) -> dict:
    resources = plan.resources_per_worker
    return {
        "trainer": "horovod.ray.RayExecutor",
        "executor": {
            "num_workers": plan.ray_workers,
            "cpus_per_worker": resources.get("CPU", 1.0),
            "use_gpu": resources.get("GPU", 0) > 0,
            "gpus_per_worker": resources.get("GPU") or None,
        },
        "settings": {"timeout_s": plan.collective_timeout_s, "placement_group_timeout_s": plan.placement_timeout_s},
        "env": horovod_env(plan),
        "restarts": "none (Horovod static mode: a failed worker fails the trial)",
        "worker_processes": worker_processes(plan),
    }


def horovod_env(plan) -> dict[str, str]:
    timeout = str(plan.collective_timeout_s)
    return {
        "HOROVOD_GLOO_TIMEOUT_SECONDS": timeout,
        # Horovod's stall inspector names the ranks that have not joined a collective, then shuts down.
        "HOROVOD_STALL_CHECK_TIME_SECONDS": str(stall_check_s(plan)),
        "HOROVOD_STALL_SHUTDOWN_TIME_SECONDS": timeout,
    }


def stall_check_s(plan) -> int:
    return max(1, plan.collective_timeout_s // 2)


class Executor:
    """One started ``RayExecutor``: its actors placed and Horovod's rendezvous set up, for one trial or for the
    trials of one worker group. ``trials`` names the trials run on it so far."""

    def __init__(self, plan):
        import ray
        from horovod.ray import RayExecutor
        from ray.util.placement_group import PlacementGroup

        described = describe(plan)
        # After Horovod's stall inspector has had its turn (it shuts down past the timeout, at its next check),
        # whose error names the rank that never joined.
        self.silence_s = plan.collective_timeout_s + stall_check_s(plan) + 5
        self.id = uuid.uuid4().hex[:12]
        self.trials: list[str] = []
        self.executor = RayExecutor(RayExecutor.create_settings(**described["settings"]), **described["executor"])
        before = _pending_placement_groups()
        try:
            self.executor.start(extra_env_vars={**plan.env, **described["env"]})
        except TimeoutError as err:
            # RayExecutor leaves its pending placement group behind: it would take the resources later.
            for pg_id in _pending_placement_groups() - before:
                ray.util.remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(pg_id))))
            raise PlacementTimeout(str(err)) from err
        try:
            self.pids = ray.get(self.executor.run_remote(os.getpid))
        except BaseException:
            self.close()
            raise

    def run(self, trial_id: str, function, config: dict, check=None) -> None:
        self.trials.append(trial_id)
        harness = config["harness"]
        wait_heard(self.executor.run_remote(function, args=[config]), harness["recorder"], harness["trial"],
                   self.silence_s, check=check)

    def alive(self, timeout_s: float = 10) -> bool:
        """Whether every worker still answers (one may have died between trials)."""
        import ray

        try:
            ray.get(self.executor.run_remote(os.getpid), timeout=timeout_s)
            return True
        except Exception:
            return False

    def close(self) -> None:
        self.executor.shutdown()


class Silent(TimeoutError):
    """No rank of a Horovod trial was heard from for reliability.collective_timeout_s while none had ended."""


def wait_heard(refs: list, recorder, trial: str, silence_s: float, poll_s: float = 2.0, check=None) -> None:
    """Wait for every rank's call; raise a rank's failure as soon as it is seen, and end the trial when no rank
    has registered or reported for ``silence_s`` while none has ended (finished or failed).

    Horovod's stall inspector (HOROVOD_STALL_SHUTDOWN_TIME_SECONDS) ends a collective that a rank stopped
    mid-training never joined, but here, on Gloo, not a rank stopped before its first collective, nor ranks
    that named a collective differently (TensorFlow): those left the others waiting for good. So the
    trial's reports are the heartbeat too, with the inspector given its turn first. Once a rank has ended,
    the collectives are behind them (rank 0 may be exporting alone), so the watch stops."""
    import ray

    started, pending = time.time(), list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=poll_s)
        if done:
            ray.get(done)  # a rank's failure, at once: the caller then shuts the executor down
        if not pending:
            return
        if check is not None:  # a rank that never reached the rendezvous, named within the timeout
            check()
        try:
            heard = ray.get(recorder.heard.remote(trial), timeout=poll_s * 5)
        except Exception:  # the recorder is slow to answer: ask again next time
            continue
        if heard["ended"]:
            continue
        quiet = time.time() - (heard["last_wall"] or started)
        if quiet > silence_s:
            where = ", ".join(f"rank {rank} " + (f"at step {step}" if step is not None else "before its first report")
                              for rank, step in sorted(heard["steps"].items()))
            raise Silent(
                f"collective stalled: no rank reported for {quiet:.0f} s, over {silence_s:.0f} s "
                f"(reliability.collective_timeout_s and Horovod's stall check){'; last heard: ' + where if where else ''}. "
                "A rank hung, or the ranks called different collectives, and Horovod did not end it; the executor "
                "was shut down. If a report can take longer than that (steps between reports, a slow start), "
                "raise reliability.collective_timeout_s"
            )


class HorovodRun(KeptRun):
    """``fit()`` starts the executor (or takes the kept one of the plan's worker group) and runs the function
    on every worker."""

    session = "horovod"

    def start(self, plan) -> Executor:
        return Executor(plan)


def _pending_placement_groups() -> set[str]:
    import ray

    return {pg_id for pg_id, entry in ray.util.placement_group_table().items() if entry.get("state") == "PENDING"}


def make_trainer(plan, train_loop_per_worker, train_loop_config: dict, storage_path: str = "",
                 kept=None) -> HorovodRun:
    # storage_path is for Ray Train's checkpoints: Horovod keeps none and never restarts.
    return HorovodRun(plan, train_loop_per_worker, train_loop_config, kept)
