"""The job spec: the only module that reads job files.

A job file is YAML, loaded as safe YAML (a key given twice is refused) and validated once, here. Everything
after ``load`` trusts the ``JobSpec`` it returns. Errors name the field, the value and what would be valid, in
one line.

A minimal job (see ``jobs/digits-mlp.yaml`` for the default one)::

    name: digits-mlp
    arms:                        # one curve per arm; both frameworks may appear in one file
      - {framework: torch, strategy: ddp}
      - {framework: tensorflow, strategy: multi_worker_mirrored}
    workload: {model: mlp, params: {hidden: [128, 128]}}
    dataset: {name: digits}
    batch: {per_worker: 32}      # weak scaling: global batch = 32 * workers
    training: {steps: 60, warmup_steps: 10}
    sweep: {workers: [1, 2], repeats: 2}
    resources: {cpus_per_worker: 1}
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import SpecError

# Which strategies each framework knows. A strategy also needs a launcher (orchestrator/running/launchers/__init__.py).
STRATEGIES: dict[str, tuple[str, ...]] = {
    "torch": ("ddp", "horovod"),
    "tensorflow": ("multi_worker_mirrored", "mirrored", "tpu", "horovod"),
}
# How each framework can run the training step. ``eager``: op by op from Python; ``compiled``: traced into a
# graph (torch.compile with Inductor; tf.function); ``xla``: tf.function(jit_compile=True), TensorFlow only.
EXECUTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("eager", "compiled"),
    "tensorflow": ("eager", "compiled", "xla"),
}
# What each framework does unless told otherwise: PyTorch runs eagerly, TensorFlow through tf.function.
DEFAULT_EXECUTION = {"torch": "eager", "tensorflow": "compiled"}
BUILTIN_MODELS = ("mlp", "cnn", "emulated")
DATASETS = ("digits", "synthetic")
# What launches each trial's workers: Ray Train (restarts, checkpoints), or plain Ray actors in a placement
# group (no restarts; a trial starts as many processes as it has workers). See orchestrator/running/launchers.
LAUNCHERS = ("ray_train", "actors")

# Upper bounds that catch typos (an extra zero or three) long before they reach a cluster.
MAX_WORKERS = 4096
MAX_STEPS = 10_000_000
MAX_BATCH = 1 << 20
MAX_REPEATS = 100
MAX_SPEC_BYTES = 1 << 20

# Prices and resources by the names people write (pricing:, --price) and Ray's.
RESOURCE_NAMES = {"cpu": "CPU", "gpu": "GPU", "tpu": "TPU"}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ENTRYPOINT = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}$")


class _Strict(BaseModel):
    # The docstring under a field is its description: in the JSON Schema (orchestrator schema) and the
    # documentation's reference, so that nothing is written twice.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _check_entrypoint(value: Optional[str]) -> Optional[str]:
    if value is not None and not _ENTRYPOINT.match(value):
        raise ValueError(
            f"{value!r} is not 'package.module:function' (letters, digits, '_' and '.' only)"
        )
    return value


class TPU(_Strict):
    """A Cloud TPU slice: ``accelerator`` v5e or v6e, ``topology`` AxB (see orchestrator/job/tpu.py)."""

    accelerator: Literal["tpu-v5e", "tpu-v6e"]
    topology: str

    @model_validator(mode="after")
    def _known_slice(self) -> "TPU":
        from orchestrator.job.tpu import TopologyError, tpu_slice

        try:
            tpu_slice(self.accelerator, self.topology)
        except TopologyError as err:
            raise ValueError(str(err)) from None
        return self


class Arm(_Strict):
    """One curve of the comparison: a framework and its distribution strategy."""

    framework: Literal["torch", "tensorflow"]
    strategy: str
    entrypoint: Optional[str] = None
    """A user training function for this arm only, overriding ``workload.entrypoint``."""
    tpu: Optional[TPU] = None
    """For ``strategy: tpu``: the slice every worker group runs on (one Ray worker per TPU host)."""
    execution: Optional[str] = None
    """Built-in workloads: ``eager``, ``compiled`` (torch.compile / tf.function) or ``xla`` (TensorFlow's
    jit_compile). Default: each framework's usual, eager for torch and compiled for TensorFlow."""

    _entrypoint = field_validator("entrypoint")(_check_entrypoint)

    @model_validator(mode="after")
    def _strategy_fits_framework(self) -> "Arm":
        known = STRATEGIES[self.framework]
        if self.strategy not in known:
            raise ValueError(
                f"strategy {self.strategy!r} is not one of {self.framework}'s: {', '.join(known)}"
            )
        if (self.strategy == "tpu") != (self.tpu is not None):
            raise ValueError("strategy tpu needs tpu: {accelerator: tpu-v5e | tpu-v6e, topology: AxB}, and only it takes one")
        if self.execution is not None and self.execution not in EXECUTIONS[self.framework]:
            raise ValueError(
                f"execution {self.execution!r} is not one of {self.framework}'s: {', '.join(EXECUTIONS[self.framework])}"
            )
        if self.strategy == "tpu" and self.run_as == "eager":
            raise ValueError("strategy tpu runs compiled graphs only: set execution to compiled or xla")
        return self

    @property
    def run_as(self) -> str:
        """The execution this arm uses, its framework's default filled in."""
        return self.execution or DEFAULT_EXECUTION[self.framework]

    @property
    def key(self) -> str:
        return execution_key(self.framework, self.strategy, self.run_as)


def execution_key(framework: str, strategy: str, execution: Optional[str]) -> str:
    """``torch/ddp``, or ``torch/ddp/compiled`` when the execution is not the framework's default."""
    key = f"{framework}/{strategy}"
    if execution and execution != DEFAULT_EXECUTION.get(framework):
        key += f"/{execution}"
    return key


class Workload(_Strict):
    """A built-in model (``model``) or a user's own Ray Train function (``entrypoint``), not both."""

    model: Optional[Literal["mlp", "cnn", "emulated"]] = None
    params: dict[str, Any] = Field(default_factory=dict)
    """Built-in model parameters: ``hidden`` (MLP layer widths), ``channels`` (CNN conv widths); for
    ``emulated`` (PyTorch only; compute as device time, orchestrator/workloads/device_time.py) ``layers``,
    ``layer_mib``, ``forward_ms``, ``backward_ms``, ``optimizer_ms`` (at ``at_batch`` samples per worker) and
    ``jitter``."""
    entrypoint: Optional[str] = None
    """``package.module:function``, a Ray Train ``train_loop_per_worker(config)``."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Passed unchanged to the user's function as its ``config``."""
    samples_metric: Optional[str] = None
    """Metric key in which the user's function reports samples processed by that worker since its last
    report. With it throughput is samples/s; without it, reports per second (a "step" is then the time
    between two reports)."""
    scaling: Optional[Literal["weak", "strong"]] = None
    """A user's function: ``strong`` (default) when its work is fixed and split among the workers (a data
    set sharded by prepare_data_loader), ``weak`` when each worker's work is fixed. Built-in workloads take
    theirs from ``batch.scaling``. It decides which scaling models are fitted (Pollux's is weak-only)."""

    _entrypoint = field_validator("entrypoint")(_check_entrypoint)

    @model_validator(mode="after")
    def _one_kind(self) -> "Workload":
        if (self.model is None) == (self.entrypoint is None):
            raise ValueError("set exactly one of 'model' (mlp | cnn | emulated) or 'entrypoint' ('package.module:function')")
        if self.model == "mlp":
            _widths(self.params, "hidden", [128, 128])
        if self.model == "cnn":
            _widths(self.params, "channels", [16, 32])
        if self.model == "emulated":
            _device_time(self.params)
        elif self.model is not None:
            unknown = set(self.params) - {"hidden", "channels"}
            if unknown:
                raise ValueError(f"unknown params {sorted(unknown)}; mlp takes 'hidden', cnn takes 'channels'")
        if self.model is not None:
            if self.scaling is not None:
                raise ValueError(f"scaling {self.scaling!r} is for a user's function; a built-in model takes "
                                 "batch.scaling (weak | strong)")
            if self.config or self.samples_metric:
                raise ValueError("config and samples_metric are for a user's function (entrypoint); a built-in "
                                 "model takes params, and counts its samples itself")
        return self

    @property
    def user_scaling(self) -> str:
        return self.scaling or "strong"

    @property
    def is_builtin(self) -> bool:
        return self.model is not None


DEVICE_TIME_RANGES = {"layers": (1, 4096), "layer_mib": (1e-6, 1024.0), "forward_ms": (0.0, 60_000.0),
                      "backward_ms": (0.0, 60_000.0), "optimizer_ms": (0.0, 60_000.0), "at_batch": (1, 1 << 20),
                      "jitter": (0.0, 1.0)}


def _device_time(params: dict) -> None:
    """The emulated model's params: known keys, finite numbers in range (integers for layers and at_batch)."""
    unknown = set(params) - set(DEVICE_TIME_RANGES)
    if unknown:
        raise ValueError(f"unknown params {sorted(unknown)}; emulated takes {', '.join(DEVICE_TIME_RANGES)}")
    for key, value in params.items():
        low, high = DEVICE_TIME_RANGES[key]
        integer = key in ("layers", "at_batch")
        ok = (type(value) is int) if integer else (type(value) in (int, float) and math.isfinite(value))
        if not ok or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            raise ValueError(f"params.{key} must be {kind} in {low}..{high}, got {value!r}")


def _widths(params: dict, key: str, default: list[int]) -> list[int]:
    value = params.get(key, default)
    if not (isinstance(value, list) and value and all(type(v) is int and 1 <= v <= 65536 for v in value)):
        raise ValueError(f"params.{key} must be a non-empty list of integers in 1..65536, got {value!r}")
    return value


class Dataset(_Strict):
    name: Literal["digits", "synthetic"] = "digits"
    """``digits``: scikit-learn's bundled 8x8 digits (real data, reports test accuracy).
    ``synthetic``: random tensors of the same shape, for throughput only."""
    num_samples: int = Field(default=4096, ge=16, le=10_000_000)
    """Synthetic only: samples in the generated training set."""
    image_size: int = Field(default=8, ge=4, le=512)
    """Synthetic only: images are ``image_size`` x ``image_size`` with one channel."""


class Batch(_Strict):
    """Per-worker batch (weak scaling), or a global batch with a scaling mode.

    weak:   per-worker batch fixed, global batch = per_worker * N.
    strong: global batch fixed, per-worker batch = global / N (must divide evenly at every N).
    ``global`` with ``weak`` means the global batch at the smallest worker count of the sweep.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    per_worker: Optional[int] = Field(default=None, ge=1, le=MAX_BATCH)
    global_: Optional[int] = Field(default=None, alias="global", ge=1, le=MAX_BATCH)
    scaling: Literal["weak", "strong"] = "weak"

    @model_validator(mode="after")
    def _one_size(self) -> "Batch":
        if (self.per_worker is None) == (self.global_ is None):
            raise ValueError("set exactly one of 'per_worker' or 'global'")
        if self.per_worker is not None and self.scaling == "strong":
            raise ValueError("strong scaling keeps the global batch fixed: use 'global', not 'per_worker'")
        return self


class Target(_Strict):
    """A quality to train to (MLPerf Training's time-to-train): each trial records the steps, samples and
    seconds until its evaluation first meets it, the clock on from the first data touch."""

    metric: str = Field(min_length=1)
    """Built-in workloads: test_accuracy (evaluated every ``every`` steps, outside the timed steps) or loss (the
    training loss). A user's function: a metric it passes to ray.train.report."""
    value: float
    every: int = Field(default=50, ge=1, le=MAX_STEPS)
    """Built-in workloads: evaluate every this many steps. A user's function's own reports are its evaluations."""
    mode: Optional[Literal["max", "min"]] = None
    """Which way is better (default: min for a loss or error, max otherwise)."""


class Training(_Strict):
    steps: Optional[int] = Field(default=None, ge=1, le=MAX_STEPS)
    """Optimiser steps per trial (every worker takes the same number). Built-in workloads need ``steps``
    or ``epochs``; a user's function decides its own length."""
    epochs: Optional[int] = Field(default=None, ge=1, le=100_000)
    """Passes over the training set; steps = epochs * ceil(train samples / global batch)."""
    warmup_steps: int = Field(default=5, ge=0, le=MAX_STEPS)
    """Steps left out of throughput (graph tracing, allocator warm-up, first collectives). For a user's
    function: report intervals left out, after the stretch before its first report (always left out)."""
    report_every: int = Field(default=20, ge=1, le=MAX_STEPS)
    """Built-in workloads call ``ray.train.report`` every this many steps."""
    checkpoint_every: int = Field(default=0, ge=0, le=MAX_STEPS)
    """Built-in workloads checkpoint every this many steps through ray.train.report (0: never). After a
    failure a trial resumes from the latest checkpoint, so at most this many steps are redone."""
    learning_rate: float = Field(default=0.05, gt=0, le=10)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    target: Optional[Target] = None

    @model_validator(mode="after")
    def _one_length(self) -> "Training":
        if self.steps is not None and self.epochs is not None:
            raise ValueError("set exactly one of 'steps' or 'epochs'")
        if self.steps is not None and self.warmup_steps >= self.steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must be below steps ({self.steps}), "
                "or nothing is left to measure"
            )
        return self


class Reliability(_Strict):
    max_failures: int = Field(default=0, ge=0, le=100)
    """Restarts of a trial's worker group after a worker dies (Ray Train FailureConfig.max_failures)."""
    collective_timeout_s: int = Field(default=600, ge=10, le=86400)
    """A collective (all-reduce, barrier) that waits longer than this fails the trial instead of hanging;
    the error names the rank that never joined. TensorFlow MultiWorkerMirrored: a worker that has made no
    step for this long aborts its collectives (orchestrator/workloads/tf_train.py, CollectiveDeadline).
    Horovod: also a trial none of whose ranks reports for this long (and half as long again, for Horovod's
    stall check)."""
    placement_timeout_s: int = Field(default=20, ge=1, le=3600)
    """A trial whose workers cannot all be placed within this fails (Ray would otherwise wait and retry
    forever); the sweep goes on with the next trial. Raise it on an autoscaling cluster."""


class Deploy(_Strict):
    """After training, built-in workloads export the trained model for deployment and measure the exports."""

    export: bool = True
    """Export once per arm (first repeat, smallest worker count): TensorFlow to TF Lite, float and
    dynamic-range quantised; PyTorch through torch.export to ONNX. Files go to OUT/export/<trial>/."""
    latency_runs: int = Field(default=200, ge=10, le=100_000)
    """Single-sample inferences timed per model for its latency (after 10 untimed ones)."""


class Measure(_Strict):
    """What each trial measures beyond throughput."""

    breakdown: bool = True
    """After the timed steps: blocks of steps with and without the gradient all-reduce, interleaved, give
    compute, exposed communication, input and wait per step; then an all-reduce microbenchmark in the same
    workers gives the collective's bandwidth (orchestrator/workloads/breakdown.py). The model, loss, accuracy
    and timed throughput are unchanged by it."""
    breakdown_blocks: int = Field(default=3, ge=2, le=100)
    """Blocks of each kind (sync, local); the first of each is a warm-up."""
    breakdown_steps: int = Field(default=5, ge=1, le=10_000)
    """Steps per block."""
    collective_repeats: int = Field(default=5, ge=1, le=1000)
    """All-reduces timed per message size in the microbenchmark (their median is kept)."""


class Sweep(_Strict):
    workers: list[int] = Field(min_length=1, max_length=64)
    """Worker counts to run, e.g. [1, 2, 4]. Efficiency is relative to the smallest (ideally 1)."""
    repeats: int = Field(default=1, ge=1, le=MAX_REPEATS)
    """Independent trials per (arm, worker count); each is kept separately."""
    adaptive: bool = False
    """Measure only as many of ``workers`` as it takes: start with the two smallest, fit, measure next the
    count whose prediction is least certain, stop once the recommended count is stable."""
    threshold: float = Field(default=0.8, gt=0, le=1)
    """Efficiency the recommendation keeps above (adaptive sweeps stop on it)."""
    reuse_workers: bool = True
    """Under launcher: actors, the repeats of one (arm, worker count) run back to back in the same worker
    processes and placement group: each repeat builds a fresh model, optimiser, data stream and TensorBoard
    run; only process start-up, imports and the rendezvous (torch's process group, TensorFlow's strategy) are
    shared. A trial that fails takes its processes with it, and the next repeat starts fresh ones. false: fresh
    processes for every trial. A user's function (Horovod's) always gets fresh ones: its process may keep state
    from the call before."""

    @field_validator("workers")
    @classmethod
    def _counts(cls, value: list[int]) -> list[int]:
        for count in value:
            if not 1 <= count <= MAX_WORKERS:
                raise ValueError(f"worker count {count} is outside 1..{MAX_WORKERS}")
        if len(set(value)) != len(value):
            raise ValueError(f"worker counts repeat: {value}")
        return sorted(value)

    @model_validator(mode="after")
    def _adaptive_needs_choices(self) -> "Sweep":
        if self.adaptive and len(self.workers) < 3:
            raise ValueError(f"adaptive sweeps choose among worker counts; give at least 3, got {self.workers}")
        return self


class Resources(_Strict):
    cpus_per_worker: float = Field(default=1.0, gt=0, le=1024)
    gpus_per_worker: float = Field(default=0.0, ge=0, le=64)
    threads_per_worker: Optional[int] = Field(default=None, ge=1, le=1024)
    """Intra-op threads in every worker of every arm; default: the CPUs per worker, at least 1."""

    @property
    def threads(self) -> int:
        return self.threads_per_worker or max(1, int(self.cpus_per_worker))


class JobSpec(_Strict):
    name: str
    arms: list[Arm] = Field(min_length=1, max_length=32)
    workload: Workload
    dataset: Dataset = Field(default_factory=Dataset)
    batch: Batch = Field(default_factory=lambda: Batch(per_worker=32))
    training: Training = Field(default_factory=Training)
    sweep: Sweep
    resources: Resources = Field(default_factory=Resources)
    reliability: Reliability = Field(default_factory=Reliability)
    deploy: Deploy = Field(default_factory=lambda: Deploy())
    measure: Measure = Field(default_factory=lambda: Measure())
    launcher: Optional[Literal[LAUNCHERS]] = None
    """``ray_train``: each trial is a Ray Train run (TorchTrainer; DataParallelTrainer with TF_CONFIG), which
    restarts failed workers (reliability.max_failures) and keeps checkpoints. ``actors``: ddp,
    multi_worker_mirrored and mirrored run on plain Ray actors that set up torch.distributed or TF_CONFIG
    themselves: faster to start and lighter while training, no restarts, built-in workloads only, and the
    repeats of one (arm, worker count) reuse their worker processes (sweep.reuse_workers). Horovod always runs
    on actors. Unset: ``actors`` for a built-in workload unless reliability.max_failures asks for restarts or
    the arm is a TPU one, ``ray_train`` otherwise (plan.choose_launcher; --dry-run says which, and why)."""
    storage_path: Optional[str] = None
    """Where Ray Train keeps trial state: a local path, or a URI such as s3://bucket/prefix (default: the
    sweep's output dir)."""
    pricing: Optional[dict[str, float]] = None
    """Price per resource-hour (cpu, gpu, tpu, or a custom resource), e.g. {cpu: 0.04, gpu: 2.5}: the report
    prices each size's time to train (`orchestrator recommend --price` overrides it)."""

    @field_validator("pricing")
    @classmethod
    def _prices(cls, value: Optional[dict]) -> Optional[dict]:
        if value is None:
            return None
        for name, price in value.items():
            if not math.isfinite(price) or price < 0:
                raise ValueError(f"{name} costs {price:g}; a price must be a finite number, 0 or more")
        if not value:
            raise ValueError("empty: give a price per resource-hour, e.g. {cpu: 0.04}")
        return {RESOURCE_NAMES.get(k.lower(), k): float(v) for k, v in value.items()}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"{value!r} must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("storage_path")
    @classmethod
    def _storage(cls, value: Optional[str]) -> Optional[str]:
        if value is not None:
            path_part = value.split("://", 1)[-1]
            if ".." in Path(path_part).parts or "\x00" in value:
                raise ValueError(f"{value!r} must not contain '..' segments")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> "JobSpec":
        keys = [arm.key for arm in self.arms]
        if len(set(keys)) != len(keys):
            raise ValueError(f"arms repeat: {keys}")
        if self.launcher == "actors":
            if self.reliability.max_failures:
                raise ValueError(
                    f"reliability.max_failures is {self.reliability.max_failures}, but launcher: actors never restarts "
                    "a worker: set max_failures to 0, or launcher to ray_train for restarts"
                )
            tpu = [arm.key for arm in self.arms if arm.strategy == "tpu"]
            if tpu:
                raise ValueError(f"arm {tpu[0]}: TPU slices are scheduled by Ray Train; use launcher: ray_train")
            if not self.workload.is_builtin and any(arm.strategy != "horovod" for arm in self.arms):
                raise ValueError(
                    "launcher: actors runs the built-in workloads; a user's Ray Train function needs Ray Train's "
                    "session (ray.train.get_context, prepare_model): use launcher: ray_train"
                )
        from orchestrator.job.tpu import TopologyError, slices_for, tpu_slice

        for arm in self.arms:
            if arm.tpu is not None:
                tpu = tpu_slice(arm.tpu.accelerator, arm.tpu.topology)
                for count in self.sweep.workers:
                    try:
                        slices_for(count, tpu)
                    except TopologyError as err:
                        raise ValueError(f"sweep.workers: {err}") from None
        if not self.workload.is_builtin:
            executions = [arm.key for arm in self.arms if arm.execution is not None]
            if executions:
                raise ValueError(
                    f"arm {executions[0]}: execution applies to built-in workloads; a user's function "
                    "compiles (or not) itself"
                )
            return self
        if self.workload.model == "emulated":
            other = [arm.key for arm in self.arms if arm.framework != "torch" or arm.run_as != "eager"]
            if other:
                raise ValueError(
                    f"arm {other[0]}: workload.model 'emulated' (compute as device time) runs under PyTorch, eagerly: "
                    "TensorFlow's MultiWorkerMirrored all-reduces after the whole backward inside its graph, where a "
                    "sleeping op would hold the executor; use framework: torch, strategy: ddp for this arm")
            horovod = [arm.key for arm in self.arms if arm.strategy == "horovod"]
            if horovod:
                raise ValueError(f"arm {horovod[0]}: workload.model 'emulated' runs under DDP (its device-time "
                                 "optimiser is not one Horovod's DistributedOptimizer can wrap); use strategy: ddp")
        overridden = [arm.key for arm in self.arms if arm.entrypoint is not None]
        if overridden:
            raise ValueError(
                f"arm {overridden[0]}: entrypoint beside "
                f"workload.model {self.workload.model!r}: an arm's entrypoint replaces a user's function, and a "
                "built-in model has none; drop the arm's entrypoint, or set workload.entrypoint instead of model"
            )
        if self.training.steps is None and self.training.epochs is None:
            raise ValueError("training: set 'steps' or 'epochs' for a built-in workload")
        target = self.training.target
        if target is not None:
            from orchestrator.workloads.target import BUILTIN_METRICS

            if target.metric not in BUILTIN_METRICS:
                raise ValueError(f"training.target.metric {target.metric!r}: the built-in workloads report "
                                 f"{' and '.join(BUILTIN_METRICS)}; use one of them, or a user's function that "
                                 "reports it")
        if self.batch.global_ is not None and self.batch.scaling == "strong":
            for count in self.sweep.workers:
                if self.batch.global_ % count:
                    raise ValueError(
                        f"batch.global ({self.batch.global_}) does not divide by {count} workers; "
                        "strong scaling needs a global batch divisible by every worker count"
                    )
        if self.batch.global_ is not None and self.batch.scaling == "weak":
            if self.batch.global_ % self.sweep.workers[0]:
                raise ValueError(
                    f"batch.global ({self.batch.global_}) does not divide by the smallest worker count "
                    f"({self.sweep.workers[0]})"
                )
        self._check_every_count_has_work()
        return self

    def _check_every_count_has_work(self) -> None:
        """Refuse, before anything runs, a worker count whose trial would have nothing to measure (epochs
        give fewer steps than the warm-up) or whose workers' shards are smaller than their batch."""
        from orchestrator.workloads import data

        samples = data.train_size(self.dataset.name, self.dataset.num_samples)
        for arm in self.arms:
            for count in self.sweep.workers:
                replicas = replicas_for(arm, count)
                batch = self.per_worker_batch(count)
                shard = samples // replicas
                if shard < batch:
                    raise ValueError(
                        f"sweep.workers {count} ({arm.key}): each of the {replicas} replicas gets {samples} // "
                        f"{replicas} = {shard} training samples, fewer than its batch of {batch}; lower the batch "
                        f"or the worker count" + (", or raise dataset.num_samples" if self.dataset.name == "synthetic" else "")
                    )
                steps = steps_for(self, count, replicas)
                if self.training.epochs is not None and steps <= self.training.warmup_steps:
                    raise ValueError(
                        f"training.epochs {self.training.epochs} at {count} worker(s) ({arm.key}) is {steps} step(s) "
                        f"({self.training.epochs} x ceil({samples} / global batch {batch * replicas})), not more than "
                        f"warmup_steps {self.training.warmup_steps}: nothing is left to measure; raise epochs or "
                        "lower warmup_steps"
                    )

    # Arithmetic the rest of the code asks of a spec, written out once.
    def per_worker_batch(self, workers: int) -> int:
        if self.batch.per_worker is not None:
            return self.batch.per_worker
        if self.batch.scaling == "strong":
            return self.batch.global_ // workers
        return self.batch.global_ // self.sweep.workers[0]

    def global_batch(self, workers: int) -> int:
        return self.per_worker_batch(workers) * workers


def at_scale(spec: JobSpec, arm_key: str, workers: int) -> JobSpec:
    """The job reduced to one arm at one worker count (one repeat): what the resources sized for a
    recommendation run (``k8s render --from-report``). Validated again, so it is a job like any other."""
    arm = next((a for a in spec.arms if a.key == arm_key), None)
    if arm is None:
        raise SpecError(spec.name, "arms", f"has no arm {arm_key!r} (the report's curve); its arms: "
                        f"{', '.join(a.key for a in spec.arms)}. Pass the job file the report was swept from, or --curve")
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["arms"] = [arm.model_dump(mode="json", by_alias=True, exclude_none=True)]
    data["sweep"] = {**data["sweep"], "workers": [workers], "adaptive": False, "repeats": 1}
    if spec.batch.scaling == "weak" and spec.batch.global_ is not None:
        # The per-worker batch the sweep ran (batch.global at its smallest count), not global / this count.
        data["batch"] = {"per_worker": spec.per_worker_batch(spec.sweep.workers[0]), "scaling": "weak"}
    return parse(data, f"{spec.name} at {workers} worker(s) of {arm_key}")


def dump(spec: JobSpec, header: str = "") -> str:
    """A job spec as YAML that ``load`` reads back to the same spec."""
    body = yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def load(path: str | Path) -> JobSpec:
    """Read, parse and validate a job file. Raises ``SpecError`` with a one-line message."""
    source = str(path)
    file = Path(path)
    if not file.is_file():
        raise SpecError(source, "file", "no such job file; pass a YAML job spec such as jobs/digits-mlp.yaml")
    if file.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(source, "file", f"is larger than {MAX_SPEC_BYTES} bytes; a job spec is a short YAML file")
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=StrictLoader)
    except UnicodeDecodeError:
        raise SpecError(source, "file", "is not UTF-8 text") from None
    except yaml.YAMLError as err:
        where, problem = yaml_problem(err)
        raise SpecError(source, where, f"malformed YAML: {problem}") from None
    return parse(data, source)


class StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping: plain YAML keeps the last one silently, so a
    second ``sweep:`` lower in a file would replace the first without a word (kubectl refuses such manifests
    too, so ``k8s validate`` reads them with it)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):  # merge keys and the like: left to YAML
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice in one mapping; keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def yaml_problem(err: yaml.YAMLError) -> tuple[str, str]:
    """Where a YAML parse error is (``line L, column C``) and what it is, in one line each."""
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
    return where, getattr(err, "problem", None) or str(err).splitlines()[0]


def parse(data: Any, source: str = "<spec>") -> JobSpec:
    if not isinstance(data, dict):
        raise SpecError(source, "top level", f"must be a mapping of fields, got {type(data).__name__}")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        # A misspelt field shows up twice: as unknown, and as the real one missing. Name the typo.
        errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        raise SpecError(source, _field_path(first["loc"]) or "top level", _describe(first)) from None


def _field_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[", "list[", "dict[")):
            path += ("." if path else "") + str(part)
    return path


def _describe(error: dict) -> str:
    kind, message, value = error["type"], error["msg"], error.get("input")
    if kind == "extra_forbidden":
        model = _model_at(error["loc"][:-1])
        if model is None:
            return "unknown field"
        known = [field.alias or name for name, field in model.model_fields.items()]
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown field; {hint}known fields here: {', '.join(known)}"
    if kind == "missing":
        return "is required"
    message = message.removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        return message
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{message} (got {shown})"


def _model_at(loc: tuple):
    """The pydantic model a location points into, for listing its known fields."""
    model = JobSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            field = next((f for f in model.model_fields.values() if f.alias == part), None)
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        nested = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nested is None:
            return None
        model = nested
    return model


# Per-count arithmetic the checks above and orchestrator.job.plan share (here, so that plan imports spec and
# never the other way round).

def steps_for(spec: "JobSpec", workers: int, replicas: Optional[int] = None) -> Optional[int]:
    """Optimiser steps of a trial: training.steps, or epochs * ceil(train samples / global batch)."""
    from orchestrator.workloads import data

    if spec.training.steps is not None:
        return spec.training.steps
    if not spec.workload.is_builtin:
        return None
    global_batch = spec.per_worker_batch(workers) * (replicas or workers)
    per_epoch = math.ceil(data.train_size(spec.dataset.name, spec.dataset.num_samples) / global_batch)
    return spec.training.epochs * per_epoch


def replicas_for(spec_arm, workers: int) -> int:
    """Model replicas at ``workers``: one per worker, or on TPU one per chip (each host drives its chips)."""
    from orchestrator.job.tpu import tpu_slice

    if spec_arm.tpu is None:
        return workers
    return workers * tpu_slice(spec_arm.tpu.accelerator, spec_arm.tpu.topology).chips_per_host

