"""Pure: why a step takes as long as it does, from what the workers measured (orchestrator/workloads/breakdown.py).

Per rank r, from the interleaved blocks (medians per step; "local" = the same step without the all-reduce):

    input(r)    = fetch time of a local step
    compute(r)  = forward, backward and optimiser of a local step
    wait(r)     = max over ranks of local(r') - local(r)          a fast rank waits for the slowest one
    exposed(r)  = sync(r) - max over ranks of local(r')           the all-reduce time not hidden by compute
    with local = fetch + compute and sync the whole normal step, so input + compute + wait + exposed = sync(r),
    measured in the blocks; ``other`` is what the timed step (the throughput's) has beyond that.

The collective on its own, with nccl-tests' definitions for all-reduce over n ranks:

    algbw = S / t        busbw = algbw * 2(n - 1) / n        t(S) = alpha + W, W = 2(n - 1)/n S / B
                                                             (gloo's pipelined ring: max(alpha + W/2, W))
    (alpha, B and their spread fitted once, orchestrator/measuring/collective.py, and read from the record by every consumer)
    ring bound of the gradient's all-reduce = 2(n - 1) / n * S / B
    overlap = 1 - exposed / t(S_gradient), not given where the parts add up to more than the step

Times are in milliseconds, bandwidths in GB/s (10^9 bytes/s).
"""

from __future__ import annotations

import statistics
from typing import Optional

from orchestrator.measuring import collective as coll
from orchestrator.measuring.collective import bus_factor

PARTS = ("input_ms", "compute_ms", "exposed_comm_ms", "wait_ms")
NAMES = {"input_ms": "input", "compute_ms": "compute", "exposed_comm_ms": "exposed communication",
         "wait_ms": "wait", "other_ms": "other"}


def ring_bound_s(gradient_bytes: int, n: int, busbw_bytes_per_s: float) -> float:
    """The ideal ring all-reduce time of ``gradient_bytes`` over ``n`` ranks on links of ``busbw``."""
    if n <= 1 or busbw_bytes_per_s <= 0:
        return 0.0
    return bus_factor(n) * gradient_bytes / busbw_bytes_per_s


def collective(points: list[dict], n: int, gradient_bytes: Optional[int] = None,
               backend: Optional[str] = None) -> Optional[dict]:
    """The microbenchmark's points (bytes, seconds: the slowest rank's) with algbw and busbw, and the one fit of
    the collective (orchestrator/measuring/collective.py) that the model and the reports read: ``alpha_us``,
    ``bus_gb_per_s``, ``spread``; ``beta_ns_per_kib`` is its slope, ``busbw_peak_gb_per_s`` the best point's."""
    if not points or n <= 1:
        return None
    rows = []
    for p in sorted(points, key=lambda p: p["bytes"]):
        algbw = p["bytes"] / p["seconds"] if p["seconds"] > 0 else 0.0
        rows.append({"bytes": p["bytes"], "time_ms": 1e3 * p["seconds"], "algbw_gb_per_s": algbw / 1e9,
                     "busbw_gb_per_s": algbw * bus_factor(n) / 1e9})
    fitted = coll.fit([(p["bytes"], p["seconds"]) for p in points], n, gradient_bytes, coll.pipelined(backend))
    out = {"points": rows, "busbw_peak_gb_per_s": max(r["busbw_gb_per_s"] for r in rows)}
    if fitted is not None:
        out.update(fitted.to_dict())
        out["beta_ns_per_kib"] = 1e9 * 1024 * bus_factor(n) / fitted.bus_bytes_per_s
    return out


def trial(workers: list[dict], step_s: float) -> Optional[dict]:
    """The trial's breakdown from each worker's ``breakdown`` report (and the harness's ``collective``, for a
    user's function), or None where nothing was measured. ``step_s`` is the timed steps' median step (of the
    slowest rank), comparable with the blocks' medians; ``other`` is what it has beyond the measured parts."""
    measured = [w for w in workers if (w.get("breakdown") or {}).get("blocks")]
    collectives = [(w.get("breakdown") or {}).get("collective") or w.get("collective") for w in workers]
    collectives = [c for c in collectives if c]
    if not measured and not collectives:
        return None
    first = (measured[0] if measured else workers[0]).get("breakdown") or {}
    n = int(first.get("workers") or len(workers))
    out: dict = {"workers": n, "gradient_bytes": first.get("gradient_bytes"),
                 **({"bucket_bytes": first["bucket_bytes"]} if first.get("bucket_bytes") else {}),
                 "backend": first.get("backend") or next((w.get("collective_backend") for w in workers
                                                          if w.get("collective_backend")), None)}
    if measured:
        out.update(_parts(measured, step_s))
        took = [w["breakdown"]["seconds"] for w in measured if isinstance(w["breakdown"].get("seconds"), (int, float))]
        if took:  # the ranks run it in lockstep: the slowest is what it added to the trial
            out["seconds"] = max(took)
    if collectives:
        sizes = [p["bytes"] for p in collectives[0]]
        slowest = [{"bytes": b, "seconds": max(c[i]["seconds"] for c in collectives if len(c) > i)}
                   for i, b in enumerate(sizes)]
        out["collective"] = collective(slowest, n, first.get("gradient_bytes"), out.get("backend"))
    bench = out.get("collective")
    size = out.get("gradient_bytes")
    fitted = coll.from_record(bench, n, size, out.get("backend")) if bench else None
    if fitted is not None and size:
        out["ring_bound_ms"] = 1e3 * ring_bound_s(size, n, fitted.bus_bytes_per_s)
        out["allreduce_ms"] = 1e3 * fitted.seconds(size, coll.pipelined(out.get("backend")))
        if "exposed_comm_ms" in out and out["allreduce_ms"] > 0 and not out.get("parts_exceed_step"):
            out["overlap_fraction"] = min(1.0, max(0.0, 1 - out["exposed_comm_ms"] / out["allreduce_ms"]))
    elif n <= 1:
        out["ring_bound_ms"] = 0.0
    timers = first.get("ddp_timers")
    if timers:
        out["framework_timers"] = {"source": "DDP logging data", **{k.replace("_s", "_ms"): 1e3 * v
                                                                    for k, v in timers.items()}}
    return out


def _parts(measured: list[dict], step_s: float) -> dict:
    def totals(w, kind):
        block = w["breakdown"]["blocks"][kind]
        return block["fetch_s"] + block["step_s"]

    slowest_local = max(totals(w, "local") for w in measured)
    ranks = []
    for w in sorted(measured, key=lambda w: w.get("rank", 0)):
        local = w["breakdown"]["blocks"]["local"]
        row = {
            "rank": w.get("rank", 0),
            "input_ms": 1e3 * local["fetch_s"],
            "compute_ms": 1e3 * local["step_s"],
            "wait_ms": 1e3 * (slowest_local - totals(w, "local")),
            "exposed_comm_ms": 1e3 * max(0.0, totals(w, "sync") - slowest_local),
            "sync_step_ms": 1e3 * totals(w, "sync"),
            "local_step_sd_ms": 1e3 * (local.get("step_sd_s") or 0.0),
        }
        if local.get("backward_s") is not None:
            row["backward_ms"] = 1e3 * local["backward_s"]
        ranks.append(row)
    parts = {key: statistics.fmean(r[key] for r in ranks) for key in PARTS}
    measured_sum = sum(parts.values())
    step_ms = 1e3 * step_s
    out = {**parts, "measured_sum_ms": measured_sum, "step_ms": step_ms, "other_ms": step_ms - measured_sum,
           "ranks": ranks, "steps_per_kind": measured[0]["breakdown"]["blocks"]["sync"]["steps"],
           # one local step's spread within a rank (its own steps' standard deviation): the per-step straggler
           "local_step_sd_ms": statistics.fmean(r["local_step_sd_ms"] for r in ranks)}
    if all("backward_ms" in r for r in ranks):
        out["backward_ms"] = statistics.fmean(r["backward_ms"] for r in ranks)
    # The step's parts add up to more than the timed step by more than its noise: quote none of them as shares.
    out["parts_exceed_step"] = bool(measured_sum > step_ms * 1.05 + 2 * out["local_step_sd_ms"])
    return out


def largest_part(entry: dict) -> str:
    """Which of compute, exposed communication, input, wait/other takes most of the step."""
    candidates = {k: entry.get(k) or 0.0 for k in PARTS}
    candidates["wait_ms"] = (entry.get("wait_ms") or 0.0) + max(0.0, entry.get("other_ms") or 0.0)
    return max(candidates, key=candidates.get)
