"""Pure: a physical model of a data-parallel step, from the measured breakdown (orchestrator/breakdown.py), that
predicts unmeasured worker counts, other link bandwidths and other node layouts.

Per curve, from its trials (times in ms per step, at N workers of per-worker batch b_N):

    base(b)    = k1 (c0 + c1 b)        the step without the all-reduce: the breakdown's local step (input +
                                       compute) fitted against the per-worker batch (least squares; through
                                       the origin where one batch was measured), times k1 = one worker's timed
                                       step over its local step (the framework's own cost of a step)
    comm(N)    = the gradient's all-reduce alone, NCCL's tuner's two algorithms, the faster kept:
                 ring  2(N-1) a + 2(N-1)/N S / B      tree  2 ceil(log2 N) a + 2 S / B
                 S = the gradient's bytes; B = the bus bandwidth, 2(n-1)/n over the slope of time against bytes
                 of the microbenchmark's messages of 64 KiB and up; a = the per-hop latency, the median time of
                 its smaller messages (latency-bound) over the 2(n-1) hops of n ranks
    step(N)    = base(b_N) s(N) + wait + exposed(N), by one of two forms (chosen by held-out error where two
                 or more multi-worker counts were measured, else "additive"):
                 additive   exposed = (1 - o) comm(N)                o: the overlap, fitted to the timed steps
                                                                     (below 0 where the all-reduce costs more
                                                                     inside the step than alone)
                 pollux     base + exposed = (base^g + comm^g)^(1/g) g: fitted (AdaptDL/Pollux's step form)
                 wait = the breakdown's wait at the largest multi-worker count; s(N) = a compute slowdown the
                 caller knows of (cores shared: the emulated cluster; 1 on real clusters)
    X(N)       = units per step at N (the global batch, for samples/s) / step(N)

Layouts (``Layout``): the measured one by default (the workers per node the sweep ran with). A what-if gives
workers per node and the link rate between nodes (and within one): a ring across nodes is as fast as its
slowest link, so B = min(intra, inter) once the workers span nodes, intra within one. A given link rate
becomes a bus bandwidth through the measured efficiency (measured B / the rate it was measured over) where
that rate is known (``measured_link_bps``), else it is taken as the bus bandwidth itself.

The band is a bootstrap over the measured trials (one trial per count drawn with replacement, k1 and 1 - o
perturbed by the measured steps' relative spread about the model's, at least 3%): the 10th to 90th
percentile of the refitted predictions.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from orchestrator.breakdown import bus_factor

BAND = (10, 90)
BOOTSTRAPS = 200
K_FLOOR = 0.03
FORMS = ("additive", "pollux")


@dataclass(frozen=True)
class Layout:
    """Where the workers are and what joins them. None: as measured."""

    workers_per_node: Optional[int] = None
    inter_node_bps: Optional[float] = None
    """The link rate between nodes, bits per second."""
    intra_node_bps: Optional[float] = None
    measured_link_bps: Optional[float] = None
    """The link rate the sweep's all-reduce ran over, to carry its efficiency (busbw / rate) to other rates."""

    @property
    def what_if(self) -> bool:
        return any(v is not None for v in (self.workers_per_node, self.inter_node_bps, self.intra_node_bps))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Trial:
    """What the model reads from one trial record (``from_record``)."""

    workers: int
    per_worker_batch: float
    units_per_step: float
    """Global batch for samples/s; 1 for steps/s."""
    throughput: float
    local_ms: float
    wait_ms: float
    exposed_ms: float
    gradient_bytes: Optional[int]
    alpha_s: Optional[float]
    """The all-reduce's latency at the gradient's size (collective_terms)."""
    bus_bytes_per_s: Optional[float]
    nodes: int

    @property
    def step_ms(self) -> float:
        return 1e3 * self.units_per_step / self.throughput

    @property
    def parts_ms(self) -> float:
        return self.local_ms + self.wait_ms + self.exposed_ms


LARGE_MESSAGE = 64 * 1024
"""Bytes from which the microbenchmark's points give the bandwidth: below, latency and a link's burst rule."""


def collective_terms(points: list[dict], n: int, gradient_bytes: int) -> Optional[tuple[float, float]]:
    """(all-reduce latency in s, bus bandwidth in bytes/s) from the microbenchmark's points (bytes, time_ms):
    the bandwidth from the slope over the large messages (nccl-tests quote busbw at large sizes), the latency
    as the median of the smaller messages' time beyond their bytes at that bandwidth (the gradient's own
    all-reduce where no message was small)."""
    rows = sorted((p["bytes"], 1e-3 * p["time_ms"]) for p in points if p.get("time_ms"))
    large = [r for r in rows if r[0] >= LARGE_MESSAGE]
    use = large if len(large) >= 2 else rows
    if len(use) < 2:
        return None
    sizes, times = np.asarray([r[0] for r in use], float), np.asarray([r[1] for r in use], float)
    slope = float(np.polyfit(sizes, times, 1)[0]) if np.ptp(sizes) > 0 else 0.0
    if slope <= 0:  # flat: latency-bound at every size measured; the best rate seen is a floor
        slope = float(min(times / sizes))
    bus = bus_factor(n) / slope
    small = [t - bus_factor(n) * b / bus for b, t in rows if b < LARGE_MESSAGE]
    if not small:
        at = float(np.interp(gradient_bytes, [r[0] for r in rows], [r[1] for r in rows]))
        small = [at - bus_factor(n) * gradient_bytes / bus]
    return max(0.0, statistics.median(small)), bus


def from_record(record, metric: str, throughput: float) -> Optional[Trial]:
    """A Trial from a TrialRecord with a breakdown of its step (None without one)."""
    b = record.get("breakdown") or {}
    if b.get("compute_ms") is None or throughput <= 0 or metric not in ("samples_per_sec", "steps_per_sec"):
        return None
    bench = b.get("collective") or {}
    size = b.get("gradient_bytes")
    terms = collective_terms(bench.get("points") or [], record.workers, size) if size and record.workers > 1 else None
    alpha, bus = terms if terms else (None, None)
    units = (record.get("global_batch") or 0) if metric == "samples_per_sec" else 1
    if not units:
        return None
    return Trial(workers=record.workers, per_worker_batch=float(record.get("per_worker_batch") or units),
                 units_per_step=float(units), throughput=float(throughput),
                 local_ms=float((b.get("input_ms") or 0.0) + b["compute_ms"]), wait_ms=float(b.get("wait_ms") or 0.0),
                 exposed_ms=float(b.get("exposed_comm_ms") or 0.0), gradient_bytes=size,
                 alpha_s=alpha, bus_bytes_per_s=bus, nodes=max(1, len(record.get("nodes") or [])))


def comm_ms(n: int, gradient_bytes: float, hop_latency_s: float, bus_bytes_per_s: float) -> float:
    """The all-reduce of the gradient over n ranks, the faster of ring and tree (NCCL's two algorithms)."""
    if n <= 1:
        return 0.0
    ring = 2 * (n - 1) * hop_latency_s + bus_factor(n) * gradient_bytes / bus_bytes_per_s
    tree = 2 * math.ceil(math.log2(n)) * hop_latency_s + 2 * gradient_bytes / bus_bytes_per_s
    return 1e3 * min(ring, tree)


@dataclass
class Physical:
    """The fitted model of one curve; duck-types orchestrator.fit.Fit (predict, band, measured, to_dict)."""

    form: str
    c0_ms: float
    c1_ms: float
    hop_latency_s: float
    bus_bytes_per_s: float
    """Measured bus bandwidth, in the measured layout."""
    gradient_bytes: int
    overlap: float
    gamma: float
    wait_ms: float
    k1: float
    """Timed step / the local step in the blocks, at one worker."""
    spread: float
    """Relative spread of the measured steps about the model's (at least 3%): the band's jitter."""
    measured_workers_per_node: Optional[int]
    """None: every measured multi-worker trial ran on one node."""
    units_per_step: Callable[[int], float]
    per_worker_batch: Callable[[int], float]
    measured: list[int]
    layout: Layout = field(default_factory=Layout)
    slowdown: Callable[[int], float] = field(default=lambda n: 1.0, repr=False)
    loo_error: Optional[float] = None
    """Mean relative error predicting each measured multi-worker count from the others (None with one)."""
    r2: float = 1.0
    rmse_relative: float = 0.0
    """Root mean square of (predicted - measured) / measured over the measured trials."""
    _samples: list = field(default_factory=list, repr=False)

    model = "physical"

    # --- the physics ---
    def local_ms(self, n: int) -> float:
        return max(1e-6, self.c0_ms + self.c1_ms * self.per_worker_batch(n))

    def bandwidth(self, n: int) -> float:
        """The bus bandwidth (bytes/s) the all-reduce of n workers gets in this layout."""
        lay = self.layout
        efficiency = (self.bus_bytes_per_s / (lay.measured_link_bps / 8)) if lay.measured_link_bps else 1.0
        measured_across = self.measured_workers_per_node is not None
        inter = lay.inter_node_bps / 8 * efficiency if lay.inter_node_bps else (
            self.bus_bytes_per_s if measured_across else None)
        intra = lay.intra_node_bps / 8 * efficiency if lay.intra_node_bps else (
            None if measured_across else self.bus_bytes_per_s)
        per_node = lay.workers_per_node or self.measured_workers_per_node or n
        if math.ceil(n / per_node) > 1:  # a ring across nodes is as fast as its slowest link
            return min(b for b in (inter, intra) if b)
        return intra or inter

    def comm_ms(self, n: int) -> float:
        return comm_ms(n, self.gradient_bytes, self.hop_latency_s, self.bandwidth(n))

    def exposed_ms(self, n: int) -> float:
        comm = self.comm_ms(n)
        if comm <= 0:
            return 0.0
        if self.form == "pollux":
            local = self.base_ms(n)
            return (local**self.gamma + comm**self.gamma) ** (1 / self.gamma) - local
        return (1 - self.overlap) * comm

    def base_ms(self, n: int) -> float:
        """The step without the all-reduce: the local step, as the timed steps take it, slowed down by s(n)."""
        return self.k1 * self.local_ms(n) * self.slowdown(n)

    def step_ms(self, n: int) -> float:
        if n <= 1:
            return self.base_ms(n)
        return self.base_ms(n) + self.wait_ms + self.exposed_ms(n)

    def predict(self, workers: int) -> float:
        n = int(workers)
        return 1e3 * self.units_per_step(n) / self.step_ms(n)

    def parts(self, workers: int) -> dict:
        n = int(workers)
        return {"local_ms": self.base_ms(n), "wait_ms": self.wait_ms if n > 1 else 0.0,
                "comm_ms": self.comm_ms(n), "exposed_comm_ms": self.exposed_ms(n) if n > 1 else 0.0,
                "step_ms": self.step_ms(n), "bus_bandwidth_gbps": self.bandwidth(n) / 1e9 if n > 1 else None}

    def band(self, workers: int) -> tuple[float, float]:
        if not self._samples:
            p = self.predict(workers)
            return (p, p)
        values = [replace(s, layout=self.layout, slowdown=self.slowdown).predict(workers) for s in self._samples]
        low, high = np.percentile(values, BAND)
        return (float(low), float(high))

    def with_layout(self, layout: Layout, slowdown: Optional[Callable[[int], float]] = None) -> "Physical":
        return replace(self, layout=layout, slowdown=slowdown or self.slowdown)

    def to_dict(self) -> dict:
        return {"model": "physical", "form": self.form, "measured_workers": self.measured, "loo_error": self.loo_error,
                "r2": self.r2, "rmse_relative": self.rmse_relative, "layout": self.layout.to_dict(),
                "params": {"local_c0_ms": self.c0_ms, "local_ms_per_sample": self.c1_ms,
                           "hop_latency_us": 1e6 * self.hop_latency_s,
                           "bus_bandwidth_gbps": self.bus_bytes_per_s / 1e9, "gradient_bytes": self.gradient_bytes,
                           "overlap": self.overlap, "gamma": self.gamma if self.form == "pollux" else None,
                           "wait_ms": self.wait_ms, "k_one_worker": self.k1, "spread": self.spread,
                           "measured_workers_per_node": self.measured_workers_per_node}}


def _linear(bs: list[float], ys: list[float]) -> tuple[float, float]:
    """y = c0 + c1 b, both non-negative; proportional through the origin with one b."""
    b, y = np.asarray(bs, float), np.asarray(ys, float)
    if len(set(bs)) < 2:
        return 0.0, float(y.mean() / b.mean())
    c1, c0 = np.polyfit(b, y, 1)
    if c0 < 0:
        return 0.0, float((b * y).sum() / (b * b).sum())
    if c1 < 0:
        return float(y.mean()), 0.0
    return float(c0), float(c1)


def _gamma(pairs: list[tuple[float, float, float]]) -> float:
    """g in [1, 10] that best gives (local^g + comm^g)^(1/g) = local + exposed, over (local, comm, synced)."""
    grid = np.linspace(1.0, 10.0, 91)
    errors = [sum(((l**g + c**g) ** (1 / g) - s) ** 2 / s**2 for l, c, s in pairs) for g in grid]
    return float(grid[int(np.argmin(errors))])


def fit_trials(trials: list[Trial], units_per_step: Callable[[int], float], per_worker_batch: Callable[[int], float],
               form: Optional[str] = None, seed: int = 0, bootstrap: bool = True) -> Optional[Physical]:
    """The model from measured trials; None without a multi-worker trial whose all-reduce was measured."""
    multi = [t for t in trials if t.workers > 1 and t.alpha_s is not None and t.bus_bytes_per_s and t.gradient_bytes]
    if not multi or not trials:
        return None
    by_batch: dict[float, list[float]] = {}
    for t in trials:
        by_batch.setdefault(t.per_worker_batch, []).append(t.local_ms)
    c0, c1 = _linear(list(by_batch), [statistics.fmean(v) for v in by_batch.values()])
    hop = statistics.fmean(t.alpha_s / (2 * (t.workers - 1)) for t in multi)
    bus = statistics.fmean(t.bus_bytes_per_s for t in multi)
    size = int(multi[0].gradient_bytes)
    top = max(t.workers for t in multi)
    wait = statistics.fmean(t.wait_ms for t in multi if t.workers == top)
    # One worker's timed step over its local step in the blocks: the framework's own cost of a step (DDP's hooks,
    # the timed loop) that the local blocks leave out; without a 1-worker trial, the multi-worker trials' parts.
    singles = [t.step_ms / t.local_ms for t in trials if t.workers == 1 and t.local_ms > 0]
    k1 = statistics.fmean(singles) if singles else statistics.fmean(
        (t.step_ms - t.wait_ms - t.exposed_ms) / t.local_ms for t in multi)
    k1 = max(k1, 1e-3)

    def base(t: Trial) -> float:
        return k1 * max(1e-6, c0 + c1 * t.per_worker_batch)

    comms = [comm_ms(t.workers, size, hop, bus) for t in multi]
    # The timed step's exposure of the all-reduce (alone: comm): r = 1 - overlap, below 0 overlap where it costs
    # more inside the step than alone (its buckets, hooks, the cores it shares with compute); r within [0, 3].
    ratios = [min(3.0, max(0.0, (t.step_ms - base(t) - wait) / c)) for t, c in zip(multi, comms)]
    overlap = 1 - statistics.fmean(ratios)
    gamma = _gamma([(base(t), c, max(t.step_ms - wait, base(t))) for t, c in zip(multi, comms)])
    per_node = sorted({math.ceil(t.workers / t.nodes) for t in multi if t.nodes > 1})
    counts = sorted({t.workers for t in trials})
    multi_counts = sorted({t.workers for t in multi})
    chosen, loo = form, None
    if chosen is None:
        chosen, loo = "additive", None
        if len(multi_counts) >= 2:
            scores = {f: _leave_one_out(trials, units_per_step, per_worker_batch, f) for f in FORMS}
            chosen = min(FORMS, key=lambda f: scores[f])
            loo = scores[chosen]
    model = Physical(form=chosen, c0_ms=c0, c1_ms=c1, hop_latency_s=hop, bus_bytes_per_s=bus, gradient_bytes=size,
                     overlap=overlap, gamma=gamma, wait_ms=wait, k1=k1, spread=K_FLOOR,
                     measured_workers_per_node=per_node[-1] if per_node else None,
                     units_per_step=units_per_step, per_worker_batch=per_worker_batch, measured=counts, loo_error=loo)
    residuals = [t.step_ms / model.step_ms(t.workers) for t in trials]
    model.spread = max(K_FLOOR, statistics.stdev(residuals) if len(residuals) > 1 else 0.0)
    x = np.asarray([t.throughput for t in trials])
    fitted = np.asarray([model.predict(t.workers) for t in trials])
    ss_tot = float(((x - x.mean()) ** 2).sum())
    model.r2 = 1.0 - float(((x - fitted) ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    model.rmse_relative = float(np.sqrt((((fitted - x) / x) ** 2).mean()))
    if bootstrap:
        model._samples = _bootstrap(trials, model, seed)
    return model


def _leave_one_out(trials, units_per_step, per_worker_batch, form) -> float:
    errors = []
    for held in sorted({t.workers for t in trials if t.workers > 1}):
        rest = [t for t in trials if t.workers != held]
        model = fit_trials(rest, units_per_step, per_worker_batch, form=form, bootstrap=False)
        if model is None:
            continue
        measured = statistics.fmean(t.throughput for t in trials if t.workers == held)
        errors.append(abs(model.predict(held) - measured) / measured)
    return statistics.fmean(errors) if errors else math.inf


def _bootstrap(trials: list[Trial], model: Physical, seed: int) -> list[Physical]:
    rng = np.random.default_rng(seed)
    by_count: dict[int, list[Trial]] = {}
    for t in trials:
        by_count.setdefault(t.workers, []).append(t)
    samples = []
    for _ in range(BOOTSTRAPS):
        drawn = [group[rng.integers(len(group))] for group in by_count.values() for _ in group]
        refit = fit_trials(drawn, model.units_per_step, model.per_worker_batch, form=model.form, bootstrap=False)
        if refit is None:
            continue
        samples.append(replace(refit, k1=refit.k1 * (1 + rng.normal(0, model.spread)),
                               overlap=1 - (1 - refit.overlap) * (1 + rng.normal(0, model.spread))))
    return samples


def fit_curve(curve, layout: Optional[Layout] = None, form: Optional[str] = None) -> Optional[Physical]:
    """The physical model of one orchestrator.scaling.Curve (None where its trials carry no breakdown with a
    measured all-reduce), in ``layout``."""
    from orchestrator.scaling import rate

    trials = [t for r in curve.records if (t := from_record(r, curve.metric, rate(r, curve.metric) or 0.0))]
    if not trials:
        return None
    # How the batch grows with N, from the measured trials: weak scaling holds the per-worker batch, strong the
    # global one.
    first = min(trials, key=lambda t: t.workers)
    per_worker_b, global_b = first.per_worker_batch, first.per_worker_batch * first.workers
    weak = curve.scaling != "strong"
    samples = curve.metric == "samples_per_sec"

    def per_worker_batch(n: int) -> float:
        return per_worker_b if weak else global_b / n

    def units_per_step(n: int) -> float:
        return (per_worker_batch(n) * n) if samples else 1.0

    model = fit_trials(trials, units_per_step, per_worker_batch, form=form)
    return model.with_layout(layout) if model and layout else model
