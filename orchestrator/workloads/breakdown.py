"""In the worker, after the timed steps: where a step's time goes, measured, and the collective on its own.

Both frameworks hand in the same two things:

    step(kind) -> (fetch_s, compute_s)     one training step; kind "sync" is the normal data-parallel step,
                                           "local" the same step without the gradient all-reduce (torch:
                                           forward and backward under DDP's no_sync(); TF: local gradients
                                           applied without cross-replica aggregation; Horovod: no allreduce)
    allreduce(nbytes) -> seconds           one all-reduce of a float32 message of nbytes through the trial's
                                           own collective (gloo/NCCL, MultiWorkerMirrored's, Horovod's)

``blocks`` alternates blocks of sync and local steps (sync, local, sync, local, ...), so a slow drift of the
machine lands on both alike; the first block of each kind is a warm-up (tracing the local variant, first
collectives) and left out. Every rank runs the same blocks in lockstep; the driver turns the ranks' numbers
into compute, exposed communication, input and wait (orchestrator/breakdown.py).

The caller saves the model and optimiser before and restores them after, so the trained model, the reported
loss and accuracy and the timed throughput never see these steps.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

MIN_MESSAGE = 4 * 1024  # 4 KiB: latency-bound
MAX_MESSAGE = 64 * 1024 * 1024  # 64 MiB cap on 2-core machines' memory and time


def blocks(step: Callable[[str], tuple[float, float]], block_count: int, steps_per_block: int) -> dict:
    """Median fetch and compute seconds per step, for sync and local steps."""
    times: dict[str, list[tuple[float, float]]] = {"sync": [], "local": []}
    for index in range(2 * block_count):
        kind = "sync" if index % 2 == 0 else "local"
        block = [step(kind) for _ in range(steps_per_block)]
        if index >= 2:  # the first block of each kind warms it up
            times[kind] += block
    return {
        kind: {"fetch_s": statistics.median(t[0] for t in rows), "step_s": statistics.median(t[1] for t in rows),
               "steps": len(rows)}
        for kind, rows in times.items()
    }


def message_sizes(gradient_bytes: int, bucket_bytes: int = 0, count: int = 8) -> list[int]:
    """Message sizes that bracket the gradient and the bucket size: geometric from 4 KiB to 4x the gradient
    (at most 64 MiB), plus the gradient and the bucket themselves; multiples of 4 bytes (float32)."""
    top = max(MIN_MESSAGE * 4, min(MAX_MESSAGE, 4 * max(gradient_bytes, MIN_MESSAGE)))
    ratio = (top / MIN_MESSAGE) ** (1 / max(1, count - 1))
    sizes = {int(MIN_MESSAGE * ratio**k) for k in range(count)}
    sizes |= {b for b in (gradient_bytes, bucket_bytes) if MIN_MESSAGE <= b <= top}
    return sorted({max(4, s // 4 * 4) for s in sizes})


def microbenchmark(allreduce: Callable[[int], float], sizes: list[int], repeats: int = 5,
                   iterations: int = 10) -> list[dict]:
    """Per message size, as nccl-tests does: the mean of ``iterations`` back-to-back all-reduces, ``repeats``
    times (the median kept), after ``iterations`` untimed ones. Every rank runs the same fixed list (a time
    budget would let ranks disagree and hang in a collective)."""
    out = []
    for nbytes in sizes:
        for _ in range(iterations):
            allreduce(nbytes)
        runs = [sum(allreduce(nbytes) for _ in range(iterations)) / iterations for _ in range(repeats)]
        out.append({"bytes": nbytes, "seconds": statistics.median(runs)})
    return out


def gradient_bytes(parameter_sizes: list[int], bytes_per_value: int = 4) -> int:
    return int(sum(parameter_sizes)) * bytes_per_value
