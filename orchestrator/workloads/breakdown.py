"""In the worker, after the timed steps: where a step's time goes, measured, and the collective on its own.

Both frameworks hand in the same two things:

    step(kind) -> (fetch_s, compute_s[, backward_s])
                                           one training step; kind "sync" is the normal data-parallel step,
                                           "local" the same step without the gradient all-reduce (torch:
                                           forward and backward under DDP's no_sync(); TF: local gradients
                                           applied without cross-replica aggregation; Horovod: no allreduce);
                                           backward_s, where the framework can time it apart, the backward
                                           pass inside compute_s (what DDP's buckets can overlap)
    allreduce(nbytes) -> seconds           one all-reduce of a float32 message of nbytes through the trial's
                                           own collective (gloo/NCCL, MultiWorkerMirrored's, Horovod's)

``blocks`` alternates blocks of sync and local steps (sync, local, sync, local, ...), so a slow drift of the
machine lands on both alike; the first block of each kind is a warm-up (tracing the local variant, first
collectives) and left out. Every rank runs the same blocks in lockstep; the driver turns the ranks' numbers
into compute, exposed communication, input and wait (orchestrator/measuring/breakdown.py).

The caller saves the model and optimiser before and restores them after, so the trained model, the reported
loss and accuracy and the timed throughput never see these steps.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Optional

MIN_MESSAGE = 4 * 1024  # 4 KiB: latency-bound
MAX_MESSAGE = 64 * 1024 * 1024  # 64 MiB cap on 2-core machines' memory and time
BATCH_S = 0.025  # a timed batch of all-reduces lasts about this long where the ranks agree on its length
MIN_ITERATIONS = 3


def blocks(step: Callable[[str], tuple], block_count: int, steps_per_block: int) -> dict:
    """Median fetch and compute seconds per step, for sync and local steps; with them the steps' spread
    (``step_sd_s``, the standard deviation of fetch + compute: what makes a rank the straggler of one step) and,
    where ``step`` times it, the median backward pass (``backward_s``)."""
    times: dict[str, list[tuple]] = {"sync": [], "local": []}
    for index in range(2 * block_count):
        kind = "sync" if index % 2 == 0 else "local"
        block = [step(kind) for _ in range(steps_per_block)]
        if index >= 2:  # the first block of each kind warms it up
            times[kind] += block
    out = {}
    for kind, rows in times.items():
        totals = [t[0] + t[1] for t in rows]
        out[kind] = {"fetch_s": statistics.median(t[0] for t in rows), "step_s": statistics.median(t[1] for t in rows),
                     "steps": len(rows), "step_sd_s": statistics.stdev(totals) if len(totals) > 1 else 0.0}
        if all(len(t) > 2 for t in rows):
            out[kind]["backward_s"] = statistics.median(t[2] for t in rows)
    return out


def message_sizes(gradient_bytes: int, bucket_bytes: int = 0, count: int = 8) -> list[int]:
    """Message sizes that bracket the gradient and the bucket size: geometric from 4 KiB to 4x the gradient
    (at most 64 MiB), plus the gradient and the bucket themselves; multiples of 4 bytes (float32)."""
    top = max(MIN_MESSAGE * 4, min(MAX_MESSAGE, 4 * max(gradient_bytes, MIN_MESSAGE)))
    ratio = (top / MIN_MESSAGE) ** (1 / max(1, count - 1))
    sizes = {int(MIN_MESSAGE * ratio**k) for k in range(count)}
    sizes |= {b for b in (gradient_bytes, bucket_bytes) if MIN_MESSAGE <= b <= top}
    return sorted({max(4, s // 4 * 4) for s in sizes})


def microbenchmark(allreduce: Callable[[int], float], sizes: list[int], repeats: int = 5,
                   iterations: int = 10, agree: Optional[Callable[[float], float]] = None,
                   batch_s: float = BATCH_S) -> list[dict]:
    """Per message size, as nccl-tests does: the mean of ``iterations`` back-to-back all-reduces, ``repeats``
    times (the median kept), after as many untimed ones. Every rank runs the same list of calls (a time budget
    of each rank's own would let ranks disagree and hang in a collective).

    ``agree(seconds) -> seconds``: the same number on every rank (one scalar all-reduce: the ranks' mean or
    max). Where given, a size whose all-reduce is slow takes fewer iterations: one untimed call, then one
    timed call agreed across ranks, and every rank takes ``iterations_for(agreed)`` calls, so that a timed batch
    lasts about ``batch_s`` (a 6 ms gRPC all-reduce: 4 a batch instead of 10; a fast one keeps 10)."""
    out = []
    for nbytes in sizes:
        count = iterations
        if agree is not None:
            allreduce(nbytes)
            count = iterations_for(agree(allreduce(nbytes)), iterations, batch_s)
        for _ in range(count):
            allreduce(nbytes)
        runs = [sum(allreduce(nbytes) for _ in range(count)) / count for _ in range(repeats)]
        out.append({"bytes": nbytes, "seconds": statistics.median(runs), "iterations": count})
    return out


def iterations_for(call_s: float, most: int, batch_s: float = BATCH_S) -> int:
    """Back-to-back calls a timed batch needs to last ``batch_s``, between MIN_ITERATIONS and ``most``. The
    agreed time is rounded to 0.1 µs first, so that ranks holding it to the last bit or not count alike."""
    call_s = round(max(call_s, 0.0), 7)
    return max(MIN_ITERATIONS, min(most, math.ceil(batch_s / call_s))) if call_s > 0 else most


def gradient_bytes(parameter_sizes: list[int], bytes_per_value: int = 4) -> int:
    return int(sum(parameter_sizes)) * bytes_per_value
