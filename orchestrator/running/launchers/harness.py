"""Runs inside every Ray Train worker: imports the trial's training function and times its reports.

The function is named by a string and imported here, in the worker, after the worker's environment is in
place (TensorFlow reads TF_USE_LEGACY_KERAS when it is first imported). ``ray.train.report`` is wrapped for
the duration of the call so that each report is stamped with this worker's clock; the function itself is
unchanged. The stamps go, as they happen, to the sweep's recorder actor under this trial's token, which the
driver reads when the trial ends; after a restart the recorder holds every attempt's workers. Under launcher:
actors the same process may run this function for several trials of one worker group, one after another:
nothing here outlives a call but the imports.

Files a worker writes under ``$ORCHESTRATOR_ARTIFACTS_DIR`` (a fresh temporary directory per worker:
TensorBoard event files, exported models) go to the recorder too when the function returns, so they reach the
driver's output directory from any node.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ARTIFACTS_ENV = "ORCHESTRATOR_ARTIFACTS_DIR"
MAX_ARTIFACT_BYTES = 256 << 20  # per worker: what goes back to the driver through the recorder
BUILTIN_PREFIX = "orchestrator.workloads."


def train_loop_per_worker(config: dict) -> None:
    harness = config["harness"]
    for path in harness["sys_path"]:
        if os.path.isdir(path) and path not in sys.path:
            sys.path.insert(0, path)

    import ray

    from orchestrator.workloads import reporting

    started_wall = time.time()
    started = time.perf_counter()
    recorder, trial = harness["recorder"], harness["trial"]  # the sweep's recorder; this trial's run in it
    # "ray_train": a Ray Train worker. "horovod" (RayExecutor) and "actors" (launchers/ray_actors.py): plain
    # Ray actors with no Ray Train session, whose launcher put the rank in the environment.
    session = harness.get("session", "ray_train")
    if session == "ray_train":
        import ray.train

        rank = ray.train.get_context().get_world_rank()
    else:
        rank = int(os.environ["HOROVOD_RANK" if session == "horovod" else "RANK"])
    key = f"{started_wall:.6f}-{rank}-{os.getpid()}"
    ray.get(recorder.start.remote(trial, key, {
        "rank": rank,
        "node_id": ray.get_runtime_context().get_node_id(),
        # Nodes of one machine (network namespaces, containers) share a hostname: the node's IP tells them apart.
        "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "started_wall": started_wall,
        # stamped as the registration leaves: the recorder's arrival stamp maps this worker's clock onto the
        # driver's (orchestrator/measuring/measure.py)
        "sent_wall": time.time(),
    }))

    def timed_report(metrics, *args, **kwargs):
        record = {"t": time.perf_counter() - started, "wall": time.time(), "metrics": _plain(metrics)}
        # Sent as it happens (actor calls from one worker arrive in order): a worker killed later keeps
        # what it had reported, which is how the sweep times a failure and the recovery from it.
        recorder.add.remote(trial, key, record)
        if session == "ray_train":
            return original(metrics, *args, **kwargs)

    # A user's function reports through ray.train.report in any session; built-in workloads outside Ray Train
    # report through reporting.session_report, and their workers never import ray.train (it imports Ray Data
    # and pandas: ~2 s a worker).
    patch = session == "ray_train" or not harness["entrypoint"].startswith(BUILTIN_PREFIX)
    if patch:
        import ray.train

        original = ray.train.report
        ray.train.report = timed_report
    if session != "ray_train":
        reporting.session_report = timed_report
    reporting.session_phase = lambda name: recorder.phase.remote(trial, key, name)
    artifacts = tempfile.mkdtemp(prefix="orchestrator-artifacts-")
    os.environ[ARTIFACTS_ENV] = artifacts
    try:
        function = resolve(harness["entrypoint"])
        if inspect.signature(function).parameters:
            function(config["train"])
        else:
            function()
    except BaseException as err:
        # Kept before the worker is torn down: which ranks failed, and how, tells the driver which rank
        # stalled a collective that the others timed out in (see measure.stall).
        try:
            ray.get(recorder.update.remote(trial, key, {"error": {"wall": time.time(), "type": type(err).__name__,
                                                                  "message": str(err)[-1000:]}}), timeout=5)
        except Exception:
            pass
        raise
    finally:
        if patch:
            ray.train.report = original
        reporting.session_report = None
        reporting.session_phase = None
        os.environ.pop(ARTIFACTS_ENV, None)
        try:
            files, skipped = collect(artifacts)
            if files or skipped:
                ray.get(recorder.files.remote(trial, key, files, skipped), timeout=60)
        finally:
            shutil.rmtree(artifacts, ignore_errors=True)
            remove_generated_sources()
    if harness.get("collective"):
        measured = user_collective(harness["collective"])
        if measured:
            backend, points = measured
            ray.get(recorder.update.remote(trial, key, {"collective": points, "collective_backend": backend}))
    ray.get(recorder.update.remote(trial, key, {"finished_wall": time.time()}))


def remove_generated_sources() -> None:
    """Deletes the files TensorFlow's AutoGraph wrote for the functions it converted in this process.

    AutoGraph writes each converted function to ``$TMPDIR/__autograph_generated_file*.py`` and deletes it only
    at interpreter exit, which a worker never reaches: Ray Train, Horovod and launcher: actors all end their
    workers with ``ray.kill``. Left alone, every TensorFlow trial leaves tens of files on its node. They are
    this process's own (AutoGraph registers each one in ``sys.modules``); the modules stay loaded, so a later
    trial in the same process still runs the functions converted before."""
    for name, module in list(sys.modules.items()):
        if name.startswith("__autograph_generated_file"):
            path = getattr(module, "__file__", None)
            if path:
                with contextlib.suppress(OSError):
                    os.remove(path)


def user_collective(settings: dict):
    """After a user's torch function: the all-reduce microbenchmark in its own process group (the same
    placement and backend its DDP used), as (backend, points); None where it cannot be run without changing
    the function (TensorFlow: its strategy is the function's own, and a second one cannot be made in the
    process; a single worker has no collective)."""
    if "torch" not in sys.modules:
        return None
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    from orchestrator.workloads import breakdown
    from orchestrator.workloads.torch_train import agreement, allreduce_timer

    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    # A user's gradient size is unknown here: the sizes span 4 KiB to 16 MiB.
    sizes = breakdown.message_sizes(4 * 1024 * 1024)
    return dist.get_backend(), breakdown.microbenchmark(allreduce_timer(device), sizes, settings.get("repeats", 5),
                                                        agree=agreement(device))


def collect(root: str) -> tuple[dict[str, bytes], list[str]]:
    """Every file under ``root`` by its relative POSIX path, up to MAX_ARTIFACT_BYTES in all."""
    files, skipped, total = {}, [], 0
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        size = path.stat().st_size
        if total + size > MAX_ARTIFACT_BYTES:
            skipped.append(f"{relative} ({size} bytes; over {MAX_ARTIFACT_BYTES} bytes of artifacts a worker)")
            continue
        files[relative] = path.read_bytes()
        total += size
    return files, skipped


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
        elif isinstance(value, dict):  # nested JSON (the built-in workloads' step breakdown)
            try:
                out[str(key)] = json.loads(json.dumps(value, allow_nan=False))
            except (TypeError, ValueError):
                pass
    return out
