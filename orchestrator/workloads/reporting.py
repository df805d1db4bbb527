"""How a built-in workload reports: ``ray.train.report`` inside Ray Train, a printed line outside it."""

from __future__ import annotations

import json
from typing import Callable


def reporter() -> Callable[[dict], None]:
    try:
        import ray.train

        ray.train.get_context()
    except (ImportError, RuntimeError):
        return _print_summary
    # Looked up at call time, so that whatever wraps ray.train.report in this worker sees the call.
    return lambda metrics: ray.train.report(metrics)


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
        "per_worker_batch": 32, "steps": 200, "report_every": 50, "learning_rate": 0.05,
        "momentum": 0.9, "seed": 0, "threads": 1, "strategy": None, "replicas": 1,
    }
    config.update(overrides)
    return config
