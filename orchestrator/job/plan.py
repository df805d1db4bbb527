"""Pure planning: a JobSpec becomes a list of TrialPlans, and a plan is checked against a cluster's resources.

No Ray, no files. ``orchestrator sweep --dry-run`` prints exactly what ``build`` returns, with each
launcher's description of the Ray Train trainer it would construct.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

from orchestrator.errors import ClusterTooSmall
from orchestrator.job.spec import JobSpec, execution_key, replicas_for, steps_for
from orchestrator.job.tpu import slices_for, tpu_slice
from orchestrator.workloads import ENTRYPOINTS, data

# Strategies whose replicas live in one Ray worker (one process driving several local devices).
SINGLE_WORKER_STRATEGIES = ("mirrored",)


@dataclass(frozen=True)
class TrialPlan:
    """Everything one trial needs, as data."""

    job: str
    framework: str
    strategy: str
    workload: str
    """``mlp``/``cnn``, or the user's entrypoint."""
    workers: int
    """Data-parallel width: the N in efficiency = throughput(N) / (N * throughput(1))."""
    repeat: int
    ray_workers: int
    """Ray Train workers (processes). Equal to ``workers`` except for ``mirrored`` (one worker, N replicas)."""
    resources_per_worker: dict[str, float]
    threads_per_worker: int
    entrypoint: str
    """The training function every Ray Train worker runs."""
    train_config: dict
    """The ``config`` that function receives."""
    per_worker_batch: Optional[int]
    global_batch: Optional[int]
    steps: Optional[int]
    warmup_steps: int
    """Built-in workloads: steps left out of throughput. User functions: reports left out."""
    samples_metric: Optional[str]
    env: dict[str, str] = field(default_factory=dict)
    max_failures: int = 0
    collective_timeout_s: int = 600
    placement_timeout_s: int = 20
    tpu: Optional[dict] = None
    """TPU arms: the slice (chips, hosts, chips per host, Ray accelerator type) and how many slices."""
    execution: Optional[str] = None
    """Built-in workloads: eager, compiled or xla (see spec.EXECUTIONS); None for a user's function."""
    launcher: str = "ray_train"
    """``ray_train`` or ``actors`` (spec.LAUNCHERS): what starts the workers; see launchers.for_plan."""
    launcher_reason: Optional[str] = None
    """Why this launcher (choose_launcher): the job named it, restarts were asked for, a user's function..."""
    worker_group: Optional[str] = None
    """Trials with the same worker group run back to back in the same worker processes (launcher: actors,
    sweep.reuse_workers): the repeats of one (arm, worker count). None: fresh processes for this trial."""
    export: bool = False
    """Whether this trial exports its trained model (one trial per arm, see ``build``)."""
    scaling: str = "weak"
    """``weak``: the per-worker batch is fixed and the global batch grows with N; ``strong``: the global work
    is fixed and split N ways (batch.scaling; a user's function: workload.scaling)."""
    replicas: int = 1
    """Model replicas that share the global batch: ``workers``, times the chips per host on TPU."""
    breakdown: Optional[dict] = None
    """measure.breakdown's settings (blocks, steps, repeats), None when off: built-in workloads break their
    step down; for a user's function the harness runs the collective microbenchmark after it."""
    target: Optional[dict] = None
    """training.target (metric, value, every, mode): what each trial's time to target is timed to."""
    pricing: Optional[dict] = None
    """The job's pricing: block (per resource-hour), carried to the record for the report's costs."""
    train_samples: Optional[int] = None
    """Built-in workloads: the training set's size (an epoch, for the report's costs)."""
    curve_hash: Optional[str] = None
    """The plan's content but the worker count and the repeat (``curve_hash``): the points of one curve share it.
    An edit of the job changes it, and results.current sets apart the points measured before the edit."""
    run_name: Optional[str] = None
    """Ray Train's run name where it must stay the same across reruns (``orchestrator train``: a rerun with the
    same output directory resumes from the run's latest checkpoint); None: a fresh name per trial."""
    controller_env: dict[str, str] = field(default_factory=dict)
    """Ray Train launchers: the settings its controller reads from the driver's environment (placement and
    report timeouts, poll interval), applied while the trial runs and restored after."""

    @property
    def arm(self) -> str:
        """The arm's key: ``torch/ddp``, or ``torch/ddp/compiled`` off the framework's default execution.
        Every group-by of trials (curves, fits, adaptive sweeps, settings) uses it."""
        return execution_key(self.framework, self.strategy, self.execution)

    @property
    def trial_id(self) -> str:
        arm = self.arm.replace("/", "-")
        return f"{arm}-{_slug(self.workload)}-w{self.workers}-r{self.repeat}"

    def to_dict(self) -> dict:
        return {"trial_id": self.trial_id, "arm": self.arm, **asdict(self)}

    def identity(self) -> dict:
        """What makes two trials the same trial (scheduler.plan_hash): the plan without the fields derived
        from the others, only labelling them, or measuring beside the timed steps (the breakdown), so that
        results written before those fields existed still count as done."""
        identity = {k: v for k, v in self.to_dict().items() if k not in _LABELS}
        # The step breakdown runs after the timed steps and leaves the trained model as it was: a trial
        # measured without it is the same measurement of everything else.
        if self.execution is not None:  # a built-in workload's config (a user's config is theirs, whole)
            identity["train_config"] = {k: v for k, v in identity["train_config"].items() if k != "breakdown"}
        return identity


# Plan fields that do not change what a trial runs: derived (arm, replicas, controller_env from the
# reliability settings) or a label (scaling).
_LABELS = ("arm", "scaling", "replicas", "controller_env", "breakdown", "run_name", "target", "pricing",
           "train_samples", "launcher_reason", "worker_group", "curve_hash")

# What differs between the points of one curve: the worker count, the repeat, and what follows from them
# (under strong scaling the per-worker batch, with training.epochs the steps, the TPU slices, the one export).
_PER_POINT = ("trial_id", "workers", "repeat", "ray_workers", "resources_per_worker", "tpu", "steps",
              "per_worker_batch", "global_batch", "export")
_PER_POINT_CONFIG = ("per_worker_batch", "steps", "tpu", "replicas", "export")


def curve_hash(plan: "TrialPlan", spec: JobSpec, arm) -> str:
    """The content every point of ``plan``'s curve shares: the plan without its per-point fields, and in their
    place, from the plan's own values, what stays fixed along the curve: the per-worker batch (weak scaling)
    or the global batch (strong), the length (training.steps, or the epochs the steps come from), the
    resources of one replica, the TPU slice's shape. Two jobs that plan the same point alike give it the same
    hash however they are written (an explicit default, ``steps`` vs ``epochs`` giving the same steps still
    differ: their other points do)."""
    content = {k: v for k, v in plan.identity().items() if k not in _PER_POINT}
    if plan.execution is not None:
        content["train_config"] = {k: v for k, v in content["train_config"].items() if k not in _PER_POINT_CONFIG}
    per_replica = {k: v / (plan.workers if plan.strategy in SINGLE_WORKER_STRATEGIES else 1)
                   for k, v in plan.resources_per_worker.items()}
    content["fixed"] = {
        "batch": (plan.global_batch if plan.scaling == "strong" else plan.per_worker_batch)
        if plan.execution is not None else None,
        "length": {"steps": spec.training.steps} if spec.training.steps is not None
        else {"epochs": spec.training.epochs},
        "resources": per_replica,
        "tpu": {k: plan.tpu.get(k) for k in ("accelerator", "topology")} if plan.tpu else None,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]

# Read by Ray Train's controller from the driver's environment: how long a worker group may wait for its
# placement group, and how long its workers may wait for each other in ray.train.report; and how often the
# controller polls its workers. Each worker's report queue holds one report, so a worker that reports again
# before the next poll blocks until it: at Ray's default of 2 s, a report every 0.1 s of training cost ~2 s
# of waiting each (and a user function timed between reports looked 20x slower).
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
REPORT_TIMEOUT_ENV = "RAY_TRAIN_COLLECTIVE_TIMEOUT_S"
POLL_ENV, POLL_INTERVAL_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1"


# Strategies that launcher: actors runs itself (launchers.ACTOR_STRATEGIES, kept here to keep planning pure).
ACTOR_STRATEGIES = ("ddp", "multi_worker_mirrored", "mirrored")


def choose_launcher(spec: JobSpec, strategy: str) -> tuple[str, str]:
    """The launcher of an arm's trials and why: the job's ``launcher`` where set; otherwise plain actors for a
    built-in workload that asks for no restarts (a sweep is a measurement: every second before step 1 is paid
    again for every trial), and Ray Train where restarts, a TPU slice or a user's function need it."""
    if strategy == "horovod":
        return spec.launcher or "actors", "Horovod runs on horovod.ray.RayExecutor's actors whatever the launcher"
    if spec.launcher:
        return spec.launcher, "named in the job"
    if not spec.workload.is_builtin:
        return "ray_train", "a user's function runs in Ray Train's session (it calls ray.train.report)"
    if spec.reliability.max_failures:
        return "ray_train", (f"reliability.max_failures is {spec.reliability.max_failures}: restarts from a "
                             "checkpoint need Ray Train")
    if strategy not in ACTOR_STRATEGIES:
        return "ray_train", f"strategy {strategy} is scheduled by Ray Train (TPU slices)"
    return "actors", ("a built-in workload with no restarts asked for, reliability.max_failures 0, starts faster "
                      "on plain Ray actors than in a Ray Train run; set launcher: ray_train for Ray Train")


def uses_ray_train(launcher: str, strategy: str) -> bool:
    """Whether a trial runs under Ray Train's controller (Horovod always runs on plain actors)."""
    return launcher == "ray_train" and strategy != "horovod"


def builtin_entrypoint(entrypoint: str) -> bool:
    """Whether a trial runs a built-in workload (not a user's function)."""
    return entrypoint in ENTRYPOINTS.values()


def fresh_processes_reason(launcher: str, strategy: str, builtin: bool = True) -> str:
    """Why the repeats of an arm's worker count each start fresh worker processes (they share none)."""
    if launcher == "ray_train":
        return ("each Ray Train run starts its own worker group" if strategy != "horovod" else
                "launcher: ray_train keeps no processes between trials (horovod.ray.RayExecutor starts its own)")
    if not builtin:
        return ("a user's function may leave state in its process for the next call (module globals, and under "
                "Horovod the names its collectives are matched by)")
    return "sweep.reuse_workers is false"


def controller_env(placement_timeout_s: int, collective_timeout_s: int) -> dict[str, str]:
    return {START_TIMEOUT_ENV: str(placement_timeout_s), REPORT_TIMEOUT_ENV: str(collective_timeout_s),
            POLL_ENV: POLL_INTERVAL_S}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def worker_env(threads: int) -> dict[str, str]:
    """The environment of every worker in every arm: threads pinned alike, legacy Keras for tf.distribute."""
    return {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(threads),
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }



def ray_workers_for(strategy: str, workers: int) -> int:
    """Ray workers (processes, pods) that run ``workers`` data-parallel workers: one, for ``mirrored``."""
    return 1 if strategy in SINGLE_WORKER_STRATEGIES else workers



def breakdown_settings(spec: JobSpec) -> Optional[dict]:
    """What the workers' step breakdown and collective microbenchmark run (None: measure.breakdown off)."""
    m = spec.measure
    if not m.breakdown:
        return None
    return {"blocks": m.breakdown_blocks, "steps": m.breakdown_steps, "repeats": m.collective_repeats}


def target_settings(spec: JobSpec) -> Optional[dict]:
    """training.target with its direction resolved, or None."""
    from orchestrator.workloads.target import direction

    t = spec.training.target
    if t is None:
        return None
    return {"metric": t.metric, "value": t.value, "every": t.every, "mode": direction(t.metric, t.mode)}


def build(spec: JobSpec) -> list[TrialPlan]:
    """Every (arm, worker count, repeat) of the job, in the order they run.

    Repeats are the outer loop and arms the inner one, so a slow drift of the machine spreads over all
    arms alike instead of landing on one of them, and a partial sweep already holds every curve. Trials that
    reuse worker processes (``worker_group``) are the exception: the repeats of one (arm, worker count) run
    back to back in the first round, since their processes hold the cluster's resources while they live.
    """
    plans = []
    resources = {"CPU": spec.resources.cpus_per_worker}
    if spec.resources.gpus_per_worker:
        resources["GPU"] = spec.resources.gpus_per_worker
    threads = spec.resources.threads
    for repeat in range(spec.sweep.repeats):
        for workers in spec.sweep.workers:
            for arm in spec.arms:
                launcher, why = choose_launcher(spec, arm.strategy)
                group = None
                # Built-in workloads only: they start every call from scratch (see fresh_processes_reason).
                if launcher == "actors" and arm.strategy in (*ACTOR_STRATEGIES, "horovod") and spec.workload.is_builtin \
                        and spec.sweep.reuse_workers and spec.sweep.repeats > 1:
                    group = f"{arm.key}-w{workers}"
                single = arm.strategy in SINGLE_WORKER_STRATEGIES
                ray_workers = ray_workers_for(arm.strategy, workers)
                per_ray_worker = {k: v * workers for k, v in resources.items()} if single else dict(resources)
                tpu_plan = None
                if arm.tpu is not None:
                    tpu = tpu_slice(arm.tpu.accelerator, arm.tpu.topology)
                    # One Ray worker per TPU host, holding that host's chips.
                    per_ray_worker["TPU"] = float(tpu.chips_per_host)
                    tpu_plan = {**tpu.to_dict(), "slices": slices_for(workers, tpu), "workers": workers}
                replicas = replicas_for(arm, workers)
                steps = steps_for(spec, workers, replicas)
                execution, export = None, False
                if spec.workload.is_builtin:
                    execution = arm.run_as
                    # One export per arm: from the first trial of it that runs (adaptive sweeps too).
                    # (Not a device-time model: its weights are no model to deploy.)
                    export = (spec.deploy.export and spec.workload.model != "emulated" and repeat == 0
                              and workers == spec.sweep.workers[0])
                    per_worker_batch = spec.per_worker_batch(workers)
                    entrypoint = ENTRYPOINTS[arm.framework]
                    config = {
                        "model": spec.workload.model,
                        "params": dict(spec.workload.params),
                        "dataset": spec.dataset.name,
                        "num_samples": spec.dataset.num_samples,
                        "image_size": 8 if spec.dataset.name == "digits" else spec.dataset.image_size,
                        "per_worker_batch": per_worker_batch,
                        "steps": steps,
                        "report_every": spec.training.report_every,
                        "checkpoint_every": spec.training.checkpoint_every,
                        "collective_timeout_s": spec.reliability.collective_timeout_s,
                        "learning_rate": spec.training.learning_rate,
                        "momentum": spec.training.momentum,
                        "seed": spec.training.seed,
                        "threads": threads,
                        "strategy": arm.strategy,
                        "tpu": tpu_plan,
                        "replicas": workers if single else 1,
                        "execution": execution,
                        "export": {"latency_runs": spec.deploy.latency_runs} if export else None,
                        "breakdown": breakdown_settings(spec),
                    }
                    if target_settings(spec):  # only where set: a job without one plans as before
                        config["target"] = target_settings(spec)
                    workload = spec.workload.model
                else:
                    per_worker_batch = None  # the user's function owns its batching
                    entrypoint = arm.entrypoint or spec.workload.entrypoint
                    config = dict(spec.workload.config)
                    workload = entrypoint
                plans.append(
                    TrialPlan(
                        job=spec.name,
                        framework=arm.framework,
                        strategy=arm.strategy,
                        workload=workload,
                        workers=workers,
                        repeat=repeat,
                        ray_workers=ray_workers,
                        resources_per_worker=per_ray_worker,
                        threads_per_worker=threads,
                        entrypoint=entrypoint,
                        train_config=config,
                        per_worker_batch=per_worker_batch,
                        global_batch=per_worker_batch * replicas if per_worker_batch else None,
                        steps=steps,
                        warmup_steps=spec.training.warmup_steps,
                        samples_metric="samples" if spec.workload.is_builtin else spec.workload.samples_metric,
                        env=worker_env(threads),
                        max_failures=spec.reliability.max_failures,
                        collective_timeout_s=spec.reliability.collective_timeout_s,
                        placement_timeout_s=spec.reliability.placement_timeout_s,
                        tpu=tpu_plan,
                        execution=execution,
                        launcher=launcher,
                        launcher_reason=why,
                        worker_group=group,
                        export=export,
                        scaling=spec.batch.scaling if spec.workload.is_builtin else spec.workload.user_scaling,
                        replicas=replicas,
                        breakdown=breakdown_settings(spec),
                        target=target_settings(spec),
                        pricing=spec.pricing,
                        train_samples=data.train_size(spec.dataset.name, spec.dataset.num_samples)
                        if spec.workload.is_builtin else None,
                        controller_env=controller_env(spec.reliability.placement_timeout_s,
                                                      spec.reliability.collective_timeout_s)
                        if uses_ray_train(launcher, arm.strategy) else {},
                    )
                )
                plans[-1] = replace(plans[-1], curve_hash=curve_hash(plans[-1], spec, arm))
    return run_order(plans)


def run_order(plans: list[TrialPlan]) -> list[TrialPlan]:
    """``plans`` (built repeats-outer) in the order they run: a worker group's repeats back to back, at the
    place of its first repeat; every other trial where it was."""
    first = {}
    for index, p in enumerate(plans):
        if p.worker_group is not None:
            first.setdefault(p.worker_group, index)
    return [p for _, p in sorted(enumerate(plans), key=lambda item: (
        (first[item[1].worker_group], item[1].repeat) if item[1].worker_group is not None else (item[0], 0)))]


TRAIN_MAX_FAILURES = 3
"""``orchestrator train``'s restarts where the job sets none: the production run is fault-tolerant."""


def training_plan(spec: JobSpec, arm_key: str, workers: int) -> TrialPlan:
    """One training run of ``arm_key`` at ``workers`` (``orchestrator train``), not a measurement: Ray Train
    (restarts from the latest checkpoint, reliability.max_failures or 3), a checkpoint every
    training.checkpoint_every steps (or every report where unset), no step breakdown, a run name that stays the
    same so that a rerun resumes, and stopping at training.target where one is set."""
    from orchestrator.job.spec import at_scale

    job = at_scale(spec, arm_key, workers)
    (one,) = build(job)
    config = dict(one.train_config)
    if one.execution is not None:  # a built-in workload
        config["breakdown"] = None
        config["checkpoint_every"] = job.training.checkpoint_every or job.training.report_every
        if config.get("target"):
            config["target"] = {**config["target"], "stop": True}
        config["export"] = {"latency_runs": job.deploy.latency_runs} if job.deploy.export else None
    max_failures = job.reliability.max_failures or TRAIN_MAX_FAILURES
    # Throughput over every step: a resumed run may have fewer reports left than a sweep's warm-up.
    return replace(one, train_config=config, breakdown=None, launcher="ray_train", worker_group=None,
                   launcher_reason=f"orchestrator train: Ray Train restarts the run from its latest checkpoint "
                                   f"(reliability.max_failures {max_failures})",
                   max_failures=max_failures,
                   warmup_steps=0,
                   export=job.deploy.export and one.execution is not None,
                   run_name=f"train-{job.name}-{one.arm.replace('/', '-')}-w{workers}",
                   controller_env=controller_env(job.reliability.placement_timeout_s, job.reliability.collective_timeout_s))


def check_fits(plans: list[TrialPlan], total: dict[str, float], nodes: list[dict[str, float]]) -> None:
    """Refuse, before anything starts, a trial the cluster cannot hold (Ray would wait for it forever).

    ``total`` is ``ray.cluster_resources()``; ``nodes`` the resources of each live node.
    """
    for plan in plans:
        need = {k: v * plan.ray_workers for k, v in plan.resources_per_worker.items()}
        if plan.tpu and total.get("TPU", 0.0) <= 0:
            t = plan.tpu
            raise ClusterTooSmall(
                f"no TPU found in the cluster ({len(nodes)} node(s), {_fmt(total_shown(total))}): trial {plan.trial_id} "
                f"plans {t['workers']} worker(s) = {t['slices']} {t['accelerator']} {t['topology']} slice(s) of "
                f"{t['hosts']} host(s) x {t['chips_per_host']} chips ({t['chips']} chips a slice). Run it on TPU hosts "
                "(k8s/overlays/tpu on GKE) or drop the tpu arm"
            )
        short = {k: v for k, v in need.items() if total.get(k, 0.0) + 1e-9 < v}
        fits_a_node = any(
            all(node.get(k, 0.0) + 1e-9 >= v for k, v in plan.resources_per_worker.items()) for node in nodes
        )
        if short or not fits_a_node:
            asked = f"{plan.ray_workers} x {_fmt(plan.resources_per_worker)} = {_fmt(need)}"
            if not short:
                asked = f"one worker of {_fmt(plan.resources_per_worker)}, more than any single node has"
            have = _fmt({k: total.get(k, 0.0) for k in need})
            raise ClusterTooSmall(
                f"trial {plan.trial_id} asks for {asked}; the cluster has {have} "
                f"on {len(nodes)} node(s). Lower sweep.workers or resources per worker, or add nodes."
            )


def total_shown(total: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in total.items() if k in ("CPU", "GPU", "TPU")}


def _fmt(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(resources.items())) + "}"
