"""Pure: the all-reduce microbenchmark of one trial as one typed result, computed once, read by the step
breakdown (orchestrator/measuring/breakdown.py), the physical model (orchestrator/modelling/physics.py) and the reports.

From the points (message bytes, seconds: the slowest rank's mean over back-to-back calls), with nccl-tests'
definitions for all-reduce over n ranks (algbw = S / t, busbw = algbw * 2(n-1)/n):

    bus bandwidth B   2(n-1)/n over the slope of t against S, over the messages of 64 KiB and up (nccl-tests
                      quote busbw at large sizes; below, a link's burst rule and the latency dominate)
    latency alpha     the median, over the messages below 64 KiB, of t - 2(n-1)/n S / B: one call's fixed cost
                      at this n, every hop included (the gradient's own size where no message was small)
    spread            the median relative distance of the points from alpha + 2(n-1)/n S / B: the
                      microbenchmark's own noise, which the model's band carries (the fit knows no backend:
                      for gloo's pipelined ring its mid sizes sit below alpha + W, which widens the spread)

    t(S) = alpha + 2(n-1)/n S / B                  one segment at a time (NCCL's tuner, TensorFlow, Horovod)
    t(S) = max(alpha + W / 2, W),  W = 2(n-1)/n S / B   gloo's ring (``PIPELINED``)

gloo's ring all-reduce (gloo/allreduce.cc) cuts each rank's chunk into two segments and keeps one in flight
while it reduces the other: of each of its 2(n-1) steps, one segment's bytes run under the other's latency.
A step takes max(a_hop + w, 2w) (w: one segment's link time), the call max(alpha + W/2, W): latency-bound
it pays alpha and half the bytes, bandwidth-bound the bytes alone. Above 2n MiB a chunk has p = S / (n MiB)
segments (gloo's segments are 1 MiB at most), still two in flight: the hops take p/2 times alpha. (The 2 MiB point of 18 trials' microbenchmarks at 8-16 ranks over tbf-shaped links: median distance
5.3% from max(alpha + W/2, W), 15.9% from alpha + W; bench/results/prediction-scale.md's sweeps.)

Units: seconds and bytes per second inside; the record keeps ``alpha_us`` and ``bus_gb_per_s`` (10^9 bytes/s).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Optional

import numpy as np

LARGE_MESSAGE = 64 * 1024
"""Bytes from which the microbenchmark's points give the bandwidth: below, latency and a link's burst rule."""
SPREAD_FLOOR = 0.02
PIPELINED = ("gloo",)
"""Backends whose ring keeps a segment in flight while it reduces another (lower case)."""
GLOO_MAX_SEGMENT = 1 << 20
"""gloo's AllreduceOptions::kMaxSegmentSize: a segment's bytes at most."""


def pipelined(backend: Optional[str]) -> bool:
    return (backend or "").lower() in PIPELINED


def segments_per_rank(nbytes: float, n: int) -> float:
    """Segments of a rank's chunk in gloo's ring: two, or more of at most ``GLOO_MAX_SEGMENT`` (1 MiB), as
    max(2, S / (n 1 MiB)); gloo rounds it up to a whole number, left out here so that a call never gets
    faster with one more rank."""
    return max(2.0, nbytes / (max(1, n) * GLOO_MAX_SEGMENT))


def ring_parts(latency_s: float, wire_s: float, pipelined_: bool, segments: float = 2.0,
               fixed_s: float = 0.0) -> tuple[float, float]:
    """(exposed latency, link time) of one ring call: ``fixed_s`` (a call's own cost, never hidden) plus
    ``latency_s`` of hops, and ``wire_s`` = W. One segment at a time: all of it. Pipelined (two segments in
    flight): each of a chunk's ``segments`` pays its hops two at a time, so the hops take segments/2 times
    ``latency_s``, and only what the other segment's bytes leave uncovered is exposed, max(0, that - W/2)
    (the call: fixed + max(hops + W/2, W))."""
    hops_s = segments / 2 * latency_s if pipelined_ else latency_s
    return exposed_latency_s(fixed_s, hops_s, wire_s, pipelined_), wire_s


def exposed_latency_s(fixed_s: float, hops_s: float, wire_s: float, pipelined_: bool) -> float:
    """The latency a ring call leaves exposed (the one rule, read by ``ring_parts`` and physics' ``Call``):
    ``fixed_s`` always; its hops ``hops_s`` whole one segment at a time, or pipelined only what the other
    segment's bytes leave uncovered, max(0, hops_s - W/2)."""
    return fixed_s + (max(0.0, hops_s - wire_s / 2) if pipelined_ else hops_s)


def bus_factor(n: int) -> float:
    """busbw / algbw for all-reduce (nccl-tests): 2(n-1)/n."""
    return 2 * (n - 1) / n if n > 1 else 0.0


@dataclass(frozen=True)
class Collective:
    """One trial's all-reduce, measured alone."""

    workers: int
    alpha_s: float
    """One call's latency at this worker count (every hop of the algorithm included)."""
    bus_bytes_per_s: float
    spread: float
    """Relative noise of the points about t(S) (at least 2%)."""
    peak_busbw_bytes_per_s: float
    """The highest busbw of any one point (what nccl-tests prints last), for reference only."""
    pipelined: bool = False
    """Fitted by gloo's rule, max(alpha + W/2, W) (else alpha + W)."""

    def seconds(self, nbytes: float, pipelined_: bool = False) -> float:
        """One call of ``nbytes`` alone: alpha + W, or gloo's pipelined ring max(alpha + W/2, W)."""
        return sum(ring_parts(self.alpha_s, bus_factor(self.workers) * nbytes / self.bus_bytes_per_s, pipelined_,
                              segments_per_rank(nbytes, self.workers)))

    def to_dict(self) -> dict:
        return {"alpha_us": 1e6 * self.alpha_s, "bus_gb_per_s": self.bus_bytes_per_s / 1e9, "spread": self.spread,
                "rule": "pipelined" if self.pipelined else "serial"}


def fit(points: list[tuple[float, float]], n: int, gradient_bytes: Optional[float] = None,
        pipelined_: bool = False) -> Optional[Collective]:
    """The collective from (bytes, seconds) points over ``n`` ranks, by the backend's rule (``pipelined_``:
    gloo's, ``_fit_pipelined``); None with fewer than two usable points or one rank."""
    rows = sorted((float(b), float(t)) for b, t in points if t and t > 0 and b > 0)
    if n <= 1 or len(rows) < 2:
        return None
    linear = _fit_serial(rows, n, gradient_bytes)
    return _fit_pipelined(rows, n, linear) if pipelined_ else linear


def _fit_serial(rows: list[tuple[float, float]], n: int, gradient_bytes: Optional[float]) -> Collective:
    large = [r for r in rows if r[0] >= LARGE_MESSAGE]
    use = large if len(large) >= 2 else rows
    sizes, times = np.asarray([r[0] for r in use]), np.asarray([r[1] for r in use])
    slope = float(np.polyfit(sizes, times, 1)[0]) if np.ptp(sizes) > 0 else 0.0
    if slope <= 0:  # flat: latency-bound at every size measured; the best rate seen is a floor
        slope = float(min(times / sizes))
    bus = bus_factor(n) / slope
    small = [t - bus_factor(n) * b / bus for b, t in rows if b < LARGE_MESSAGE]
    if not small:
        size = gradient_bytes or rows[0][0]
        at = float(np.interp(size, [r[0] for r in rows], [r[1] for r in rows]))
        small = [at - bus_factor(n) * size / bus]
    alpha = max(0.0, statistics.median(small))
    model = [alpha + bus_factor(n) * b / bus for b, _ in rows]
    spread = statistics.median(abs(t - m) / t for (_, t), m in zip(rows, model))
    peak = max(b / t for b, t in rows) * bus_factor(n)
    return Collective(workers=n, alpha_s=alpha, bus_bytes_per_s=bus, spread=max(SPREAD_FLOOR, spread),
                      peak_busbw_bytes_per_s=peak)


def _fit_pipelined(rows: list[tuple[float, float]], n: int, linear: Collective) -> Collective:
    """alpha and B of t(S) = max(alpha + W/2, W) (segments as ``segments_per_rank``), least relative squares
    over every point: B on a log grid about the straight line's (latency-bound, the line's slope is half the
    rule's, so its B twice the rule's), alpha for each B the best of the points' own t - W/2 (and 0). Where
    every point is bandwidth-bound the rule leaves alpha free up to W/2: the straight line's is kept."""
    sizes, times = np.asarray([r[0] for r in rows]), np.asarray([r[1] for r in rows])
    factor = bus_factor(n)
    best = (np.inf, linear.alpha_s, linear.bus_bytes_per_s)
    for bus in linear.bus_bytes_per_s * np.logspace(-1.0, 0.5, 301):
        wire = factor * sizes / bus
        hops = np.maximum(2.0, sizes / (max(1, n) * GLOO_MAX_SEGMENT)) / 2
        candidates = np.unique(np.concatenate([[0.0, linear.alpha_s], np.maximum(0.0, (times - wire / 2) / hops)]))
        for alpha in candidates:
            model = np.maximum(hops * alpha + wire / 2, wire)
            error = float((((model - times) / times) ** 2).sum())
            if error < best[0] - 1e-15:
                best = (error, float(alpha), float(bus))
    _, alpha, bus = best
    wire = factor * sizes / bus
    hops = np.maximum(2.0, sizes / (max(1, n) * GLOO_MAX_SEGMENT)) / 2
    if not (times > wire * (1 + SPREAD_FLOOR)).any():  # bandwidth-bound throughout: alpha unconstrained
        alpha = min(linear.alpha_s, float((wire / 2).min()))
    model = np.maximum(hops * alpha + wire / 2, wire)
    spread = statistics.median(float(abs(t - m) / t) for t, m in zip(times, model))
    return Collective(workers=n, alpha_s=alpha, bus_bytes_per_s=bus, spread=max(SPREAD_FLOOR, spread),
                      peak_busbw_bytes_per_s=linear.peak_busbw_bytes_per_s, pipelined=True)


def from_rows(rows: list[dict], n: int, gradient_bytes: Optional[float] = None,
              pipelined_: bool = False) -> Optional[Collective]:
    """From a record's points (``bytes``, ``time_ms``), as orchestrator.measuring.breakdown stores them."""
    return fit([(p["bytes"], 1e-3 * p["time_ms"]) for p in rows if p.get("time_ms")], n, gradient_bytes, pipelined_)


def from_record(bench: Optional[dict], n: int, gradient_bytes: Optional[float] = None,
                backend: Optional[str] = None) -> Optional[Collective]:
    """The collective a record's breakdown stored (``alpha_us``, ``bus_gb_per_s``, ``spread``, ``rule``), else
    fitted from its points by the backend's rule (records written before the fit was stored, or fitted by
    another rule than ``backend``'s: a gloo record fitted as alpha + W)."""
    if not bench or n <= 1:
        return None
    wanted = "pipelined" if pipelined(backend) else "serial"
    if bench.get("bus_gb_per_s") and (bench.get("rule") or "serial") == wanted:
        return Collective(workers=n, alpha_s=1e-6 * float(bench.get("alpha_us") or 0.0),
                          bus_bytes_per_s=1e9 * float(bench["bus_gb_per_s"]),
                          spread=max(SPREAD_FLOOR, float(bench.get("spread") or 0.0)),
                          peak_busbw_bytes_per_s=1e9 * float(bench.get("busbw_peak_gb_per_s") or bench["bus_gb_per_s"]),
                          pipelined=wanted == "pipelined")
    found = from_rows(bench.get("points") or [], n, gradient_bytes, wanted == "pipelined")
    if found is None and bench.get("bus_gb_per_s"):  # no points kept: the stored fit, by its own rule
        return from_record({**bench, "rule": wanted}, n, gradient_bytes, backend)
    return found
