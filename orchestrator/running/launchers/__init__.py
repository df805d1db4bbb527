"""One launcher module per distribution backend, behind one small interface.

A launcher module exposes two functions, and may expose a third:

    describe(plan) -> dict
        Pure. The Ray Train trainer it would build for ``plan``: class, ScalingConfig, backend config.
        ``--dry-run`` prints it.
    make_trainer(plan, train_loop_per_worker, train_loop_config, storage_path)
        Builds that trainer (imports Ray Train lazily; ``run_config`` below for Ray Train's). Anything with a
        ``fit()`` that raises on failure.
    check_installed() -> None
        Raises UserError when the backend's packages are missing; the sweep calls it before anything starts.

A launcher that can keep its workers between trials (ray_actors.py, horovod.py, for a plan's ``worker_group``)
takes a ``Kept`` as ``kept=`` in make_trainer: the sweep's one slot for the worker processes the last trial
left, under ``group_key(plan)``. Its trainer is a ``KeptRun`` whose ``start(plan)`` places a new group.

Adding a backend is one new module and one line in ``_MODULES``. Modules load only when used, so a torch-only
sweep never imports TensorFlow's launcher.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import uuid
from typing import Optional
from types import ModuleType

from orchestrator.errors import UserError
from orchestrator.job.plan import ACTOR_STRATEGIES  # noqa: F401  (launcher: actors runs these: ray_actors.py)

_MODULES = {
    "ddp": "orchestrator.running.launchers.torch_ddp",
    "multi_worker_mirrored": "orchestrator.running.launchers.tf_distribute",
    "mirrored": "orchestrator.running.launchers.tf_distribute",
    "tpu": "orchestrator.running.launchers.tf_distribute",
    "horovod": "orchestrator.running.launchers.horovod",
}


class Kept:
    """At most one live worker group, kept between the trials of a sweep for the next trial of the same group
    (its key). Anything else that needs the cluster's resources releases it first."""

    def __init__(self):
        self.key, self.group = None, None

    def take(self, key):
        """The kept group if it was kept under ``key`` (it is the caller's now); otherwise it is closed."""
        group, same = self.group, self.key == key
        self.key, self.group = None, None
        if group is not None and not same:
            group.close()
            return None
        return group

    def keep(self, key, group) -> None:
        self.release()
        self.key, self.group = key, group

    def release(self) -> None:
        group, self.key, self.group = self.group, None, None
        if group is not None:
            group.close()


def group_key(plan) -> tuple:
    """What a worker group's processes were made for: another trial may run in them only if it is the same."""
    return (plan.worker_group, plan.strategy, plan.ray_workers, json.dumps(plan.resources_per_worker, sort_keys=True),
            json.dumps(plan.env, sort_keys=True), plan.collective_timeout_s)


def worker_processes(plan) -> str:
    """Whether the plan's trial runs in processes kept for its worker group's repeats (``--dry-run`` says)."""
    if plan.worker_group:
        return f"kept for every repeat of worker group {plan.worker_group} (sweep.reuse_workers)"
    return "fresh for this trial"


class KeptRun:
    """A trainer-like object over a worker group that may outlive its trial (a launcher's ``start(plan)``
    returns one: ``id``, ``pids``, ``trials``, ``run(trial_id, function, config)``, ``alive()``, ``close()``).
    ``fit()`` takes the kept group of the plan's worker group where it still answers, else starts one; runs
    the function on it; keeps it for the next repeat, or closes it: a failed trial takes its processes with
    it, so the next repeat starts fresh ones. ``reuse`` says afterwards whose processes the trial ran in."""

    session = ""  # the harness's name for where the function runs

    def __init__(self, plan, train_loop_per_worker, train_loop_config: dict, kept: "Kept | None" = None):
        self.plan = plan
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = {**train_loop_config,
                                  "harness": {**train_loop_config["harness"], "session": self.session}}
        self.kept = kept if plan.worker_group is not None else None
        self.reuse: dict | None = None

    def start(self, plan):
        raise NotImplementedError

    def fit(self) -> None:
        plan, key = self.plan, group_key(self.plan)
        group = self.kept.take(key) if self.kept is not None else None
        if group is not None and not group.alive():
            group.close()
            group = None
        if group is None:
            group = self.start(plan)  # closes what it placed when it fails
        self.reuse = {"group": group.id, "use": len(group.trials) + 1, "shared_with": list(group.trials),
                      "pids": list(group.pids)}
        try:
            group.run(plan.trial_id, self.train_loop_per_worker, self.train_loop_config,
                      rendezvous_check(plan, self.train_loop_config["harness"], list(group.pids)))
        except BaseException:
            group.close()
            raise
        if self.kept is not None:
            self.kept.keep(key, group)
        else:
            group.close()


# What each strategy's first rendezvous is, in a stall's message (reporting.phase marks it in the workloads).
RENDEZVOUS = {"multi_worker_mirrored": "MultiWorkerMirroredStrategy's first barrier",
              "horovod": "Horovod's rendezvous (hvd.init and the first broadcast)",
              "ddp": "DistributedDataParallel's first broadcast"}


def rendezvous_check(plan, harness: dict, pids: Optional[list[int]] = None, poll_s: float = 2.0):
    """A check for a launcher's wait loop (call it every ``poll_s`` or so): raises a TrialError naming the ranks
    that never reached the strategy's first rendezvous once another has waited there for over
    reliability.collective_timeout_s (measure.rendezvous_stall). Before the first collective, neither
    MultiWorkerMirroredStrategy's own bound nor Horovod's stall inspector ends the wait; Ray notices a stopped
    process only after its RPC keepalive (minutes). A recorder that is slow to answer is asked next time."""
    import ray

    from orchestrator.measuring import measure
    from orchestrator.errors import TrialError

    recorder, trial = harness["recorder"], harness["trial"]
    what = RENDEZVOUS.get(plan.strategy, "the first collective")

    def check() -> None:
        try:
            heard = ray.get(recorder.heard.remote(trial), timeout=poll_s * 5)
        except Exception:
            return
        stall = measure.rendezvous_stall(heard["workers"], plan.ray_workers, plan.collective_timeout_s,
                                         heard["now_wall"], pids=pids)
        if stall:
            raise TrialError(measure.rendezvous_message(stall, what, plan.collective_timeout_s),
                             {"kind": "collective_stall", **stall})

    return check


class PlacementTimeout(TimeoutError):
    """A launcher's placement group was not ready in time (named like Ray Train's error, for the diagnosis)."""


def free_address() -> str:
    """``host:port`` (``[host]:port`` for IPv6) with a free port on this Ray node, for a worker to serve on."""
    import ray

    host = ray.util.get_node_ip_address()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    return f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"


def for_plan(plan) -> ModuleType:
    """The launcher that runs ``plan``: its strategy's, or the plain-actor one under ``launcher: actors``."""
    if plan.launcher == "actors" and plan.strategy in ACTOR_STRATEGIES:
        return importlib.import_module("orchestrator.running.launchers.ray_actors")
    return get(plan.strategy)


def get(strategy: str) -> ModuleType:
    try:
        return importlib.import_module(_MODULES[strategy])
    except KeyError:
        raise UserError(f"no launcher for strategy {strategy!r}; known: {', '.join(sorted(_MODULES))}") from None


@contextlib.contextmanager
def controller_environment(plan):
    """The driver's environment while a trial runs: Ray Train's controller reads its settings from it when
    fit() starts the controller (plan.controller_env: placement and report timeouts, poll interval).
    Restored afterwards, so one trial's settings never leak into the next or into the user's process."""
    saved = {key: os.environ.get(key) for key in plan.controller_env}
    os.environ.update(plan.controller_env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def tf_config(addresses: list[str], index: int) -> str:
    """TF_CONFIG for worker ``index`` of a MultiWorkerMirroredStrategy cluster of ``addresses`` (host:port),
    as both TF launchers write it."""
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}})


def run_config(plan, storage_path: str):
    """The RunConfig of every Ray Train launcher (the controller's settings are plan.controller_env, applied
    around fit() by controller_environment)."""
    from ray.train import FailureConfig, RunConfig

    return RunConfig(
        # A training run keeps its name, so that Ray Train restores its latest checkpoint on a rerun; a sweep's
        # trial is a fresh measurement each time.
        name=plan.run_name or f"{plan.job}-{plan.trial_id}-{uuid.uuid4().hex[:8]}",
        storage_path=storage_path,
        worker_runtime_env={"env_vars": dict(plan.env)},
        # A worker group that cannot be placed is a controller failure: by default Ray Train retries those
        # forever. Here it ends the trial after placement_timeout_s, and the sweep goes on.
        failure_config=FailureConfig(max_failures=plan.max_failures, controller_failure_limit=0),
    )


def scaling_config(plan) -> dict:
    """ScalingConfig arguments shared by every Ray Train launcher."""
    resources = dict(plan.resources_per_worker)
    config = {
        "num_workers": plan.ray_workers,
        "use_gpu": resources.get("GPU", 0) > 0,
        "resources_per_worker": resources,
    }
    if plan.tpu:
        # Ray reserves whole slices: topology and accelerator type pick the hosts (one worker each).
        config.update(use_tpu=True, topology=plan.tpu["topology"],
                      accelerator_type=plan.tpu["ray_accelerator_type"].rsplit("-", 1)[0])
    return config
