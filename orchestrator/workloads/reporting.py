"""How a built-in workload reports and checkpoints: through Ray Train inside it, plainly outside it.

Checkpoints are directories of plain tensors (``torch.save`` of state dicts, read back with
``weights_only=True``; TensorFlow's own checkpoint format), never pickles of arbitrary objects.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional


# Set by the harness in workers that Ray Train does not run (Horovod's, launcher: actors): where reports go.
session_report: Optional[Callable[[dict], None]] = None
# Set by the harness in every worker: where ``phase`` marks go (the sweep's recorder).
session_phase: Optional[Callable[[str], None]] = None

RENDEZVOUS, JOINED = "rendezvous", "joined"


def phase(name: str) -> None:
    """Mark where this worker is, for the launcher's watch of the first rendezvous: ``RENDEZVOUS`` just before
    the call that waits for every rank (MultiWorkerMirroredStrategy's barrier, hvd.init, DDP's first
    broadcast), ``JOINED`` once the first step's collectives are done. A rank waiting past
    reliability.collective_timeout_s for one that never marked RENDEZVOUS is a stall the launcher names
    (measure.rendezvous_stall). Nothing happens outside the orchestrator's harness."""
    if session_phase is not None:
        session_phase(name)


def _in_ray_train() -> bool:
    try:
        import ray.train

        ray.train.get_context()
        return True
    except (ImportError, RuntimeError):
        return False


def reporter() -> Callable[..., None]:
    """``report(metrics, checkpoint_dir=None)``."""
    if session_report is not None:  # no Ray Train session: no checkpoints either (nothing would restore them)
        hook = session_report
        return lambda metrics, checkpoint_dir=None: hook(metrics)
    if not _in_ray_train():
        return lambda metrics, checkpoint_dir=None: _print_summary(metrics)
    import ray.train

    def report(metrics: dict, checkpoint_dir: Optional[str] = None) -> None:
        # ray.train.report is looked up at call time, so whatever wraps it in this worker sees the call.
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)

    return report


@contextmanager
def latest_checkpoint() -> Iterator[Optional[Path]]:
    """The directory of the latest checkpoint Ray Train restored this run from, or None."""
    checkpoint = None
    if session_report is None and _in_ray_train():
        import ray.train

        checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as directory:
        yield Path(directory)


@contextmanager
def checkpoint_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="orchestrator-ckpt-") as directory:
        yield directory


def artifacts_dir(kind: str) -> Optional[Path]:
    """Where this worker writes files of one kind (``tensorboard``, ``export``) for the run's directory.

    Under the orchestrator: a directory the harness sends to the driver (OUT/<kind>/<trial>/). Run alone:
    ``$ORCHESTRATOR_ARTIFACTS_DIR/<kind>`` when that is set, else None (nothing is written)."""
    root = os.environ.get("ORCHESTRATOR_ARTIFACTS_DIR")
    if not root:
        return None
    path = Path(root) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def tensorboard_without_tensorflow() -> None:
    """Keep TensorBoard's writer and reader from importing TensorFlow (8 s here) where it is not loaded yet:
    TensorBoard uses its own protobuf stub when the marker module ``tensorboard.compat.notf`` exists."""
    import sys
    import types

    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


def export_dir(config: dict, rank: int) -> Optional[Path]:
    """Where rank 0 writes the trained model's exports when the trial asks for them (``config["export"]``)."""
    return artifacts_dir("export") if config.get("export") and rank == 0 else None


class StepLog:
    """Loss, step time and throughput of every step, for TensorBoard: kept in memory while training and written
    after it (or every ``flush_steps`` steps), so that the writer's imports and writes never run before step 1
    or between timed steps, where the other ranks would wait for this one.

    ``open_writer()`` is called once, at the first write; it returns ``(write, close)``: ``write`` takes
    ``[(tag, value, step), ...]`` and flushes them to disk, ``close`` ends the file.
    """

    def __init__(self, open_writer: Callable[[], tuple[Callable, Callable]], global_batch: int,
                 flush_steps: int = 50_000):
        self.open_writer, self.global_batch, self.flush_steps = open_writer, global_batch, flush_steps
        self.rows: list[tuple[int, float, float]] = []
        self.writer: Optional[tuple[Callable, Callable]] = None

    def add(self, last_step: int, losses: list[float], step_times: list[float]) -> None:
        """The steps of one report: they end at ``last_step``."""
        self.rows += zip(range(last_step - len(step_times) + 1, last_step + 1), losses, step_times)
        if len(self.rows) >= self.flush_steps:
            self.flush()

    def flush(self) -> None:
        if self.writer is None:
            self.writer = self.open_writer()
        scalars = []
        for step, loss, seconds in self.rows:
            scalars += [("train/loss", loss, step), ("train/step_time_ms", 1000 * seconds, step),
                        ("train/samples_per_sec", self.global_batch / seconds, step)]
        self.writer[0](scalars)
        self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer[1]()


def write_step(directory: str | Path, step: int, extra: Optional[dict] = None) -> None:
    (Path(directory) / "step.json").write_text(json.dumps({**(extra or {}), "step": step}))


def read_step(directory: str | Path) -> int:
    return int(json.loads((Path(directory) / "step.json").read_text())["step"])


def read_extra(directory: str | Path) -> dict:
    """What write_step saved beside the step (the target clock)."""
    return json.loads((Path(directory) / "step.json").read_text())


def _print_summary(metrics: dict) -> None:
    times = metrics.get("step_times_s") or []
    shown = {k: v for k, v in metrics.items() if k != "step_times_s"}
    if times:
        shown["samples_per_sec"] = round(metrics["samples"] / sum(times), 1)
    print(json.dumps(shown))


def default_config(**overrides) -> dict:
    """The config a single-process run uses: digits, MLP, 200 steps of 32."""
    config = {
        "model": "mlp", "params": {}, "dataset": "digits", "num_samples": 4096, "image_size": 8,
        "per_worker_batch": 32, "steps": 200, "report_every": 50, "checkpoint_every": 0, "learning_rate": 0.05,
        "momentum": 0.9, "seed": 0, "threads": 1, "strategy": None, "replicas": 1,
    }
    config.update(overrides)
    return config
