"""Runs inside every Ray Train worker: imports the trial's training function and times its reports.

The function is named by a string and imported here, in the worker, after the worker's environment is in
place (TensorFlow reads TF_USE_LEGACY_KERAS when it is first imported). ``ray.train.report`` is wrapped for
the duration of the call so that each report is stamped with this worker's clock; the function itself is
unchanged. The stamps go to a small recorder actor that the driver reads when the trial ends.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import socket
import sys
import time


def train_loop_per_worker(config: dict) -> None:
    harness = config["harness"]
    for path in harness["sys_path"]:
        if os.path.isdir(path) and path not in sys.path:
            sys.path.insert(0, path)

    import ray
    import ray.train

    started_wall = time.time()
    started = time.perf_counter()
    records: list[dict] = []
    original = ray.train.report

    def timed_report(metrics, *args, **kwargs):
        records.append({"t": time.perf_counter() - started, "metrics": _plain(metrics)})
        return original(metrics, *args, **kwargs)

    ray.train.report = timed_report
    context = ray.train.get_context()
    worker = {
        "rank": context.get_world_rank(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "started_wall": started_wall,
        "records": records,
    }
    try:
        function = resolve(harness["entrypoint"])
        if inspect.signature(function).parameters:
            function(config["train"])
        else:
            function()
    finally:
        ray.train.report = original
        worker["finished_wall"] = time.time()
        ray.get(harness["recorder"].add.remote(worker))


def resolve(entrypoint: str):
    module_name, _, attribute = entrypoint.partition(":")
    module = importlib.import_module(module_name)
    function = getattr(module, attribute, None)
    if not callable(function):
        raise AttributeError(f"{entrypoint}: module {module_name} has no function {attribute!r}")
    return function


def _plain(metrics: dict) -> dict:
    """The JSON-safe part of a metrics dict: numbers, strings, and lists of numbers."""
    out = {}
    for key, value in dict(metrics).items():
        if isinstance(value, bool) or isinstance(value, str):
            out[str(key)] = value
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[str(key)] = value
        elif hasattr(value, "item") and getattr(value, "size", 1) == 1:
            try:
                out[str(key)] = float(value.item())
            except (TypeError, ValueError):
                pass
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
            out[str(key)] = [float(v) for v in value]
    return out
