"""One launcher module per distribution backend, behind one small interface.

A launcher module exposes two functions, and may expose a third:

    describe(plan) -> dict
        Pure. The Ray Train trainer it would build for ``plan``: class, ScalingConfig, backend config.
        ``--dry-run`` prints it.
    make_trainer(plan, train_loop_per_worker, train_loop_config, run_config)
        Builds that trainer (imports Ray Train lazily). Anything with a ``fit()`` that raises on failure.
    check_installed() -> None
        Raises UserError when the backend's packages are missing; the sweep calls it before anything starts.

Adding a backend is one new module and one line in ``_MODULES``. Modules load only when used, so a torch-only
sweep never imports TensorFlow's launcher.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from orchestrator.errors import UserError

_MODULES = {
    "ddp": "orchestrator.launchers.torch_ddp",
    "multi_worker_mirrored": "orchestrator.launchers.tf_distribute",
    "mirrored": "orchestrator.launchers.tf_distribute",
    "tpu": "orchestrator.launchers.tf_distribute",
    "horovod": "orchestrator.launchers.horovod",
}


# launcher: actors runs these strategies on plain Ray actors instead of Ray Train (ray_actors.py).
ACTOR_STRATEGIES = ("ddp", "multi_worker_mirrored", "mirrored")


class PlacementTimeout(TimeoutError):
    """A launcher's placement group was not ready in time (named like Ray Train's error, for the diagnosis)."""


def for_plan(plan) -> ModuleType:
    """The launcher that runs ``plan``: its strategy's, or the plain-actor one under ``launcher: actors``."""
    if plan.launcher == "actors" and plan.strategy in ACTOR_STRATEGIES:
        return importlib.import_module("orchestrator.launchers.ray_actors")
    return get(plan.strategy)


def get(strategy: str) -> ModuleType:
    try:
        return importlib.import_module(_MODULES[strategy])
    except KeyError:
        raise UserError(f"no launcher for strategy {strategy!r}; known: {', '.join(sorted(_MODULES))}") from None


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
