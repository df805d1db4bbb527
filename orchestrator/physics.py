"""Pure: a physical model of a data-parallel step, from the measured breakdown (orchestrator/breakdown.py), that
predicts unmeasured worker counts, other link bandwidths and other node layouts.

Per curve, from its trials' breakdowns (times in ms, per step, at N workers of per-worker batch b_N):

    local(b)   = input + compute of the step without the all-reduce:  c0 + c1 b    (least squares over the
                 measured per-worker batches; proportional to b where only one was measured)
    comm(N)    = the gradient's all-reduce, NCCL's tuner's two algorithms, the faster kept:
                 ring  2(N-1) a + 2(N-1)/N S / B      tree  2 ceil(log2 N) a + 2 S / B
                 a = the per-hop latency (alpha / 2(n-1) of the microbenchmark's alpha-beta fit at n ranks),
                 S = the gradient's bytes, B = the bus bandwidth (2(n-1)/n / beta)
    exposed(N) = the part of comm not hidden behind compute, by one of two forms (chosen by held-out error
                 where two or more multi-worker counts were measured, else "additive"):
                 additive   (1 - o) comm(N)                          o: the measured overlap
                 pollux     (local^g + comm^g)^(1/g) - local         g: fitted (AdaptDL/Pollux's step form)
    wait(N)    = the measured wait at the largest multi-worker count (a rank waiting for the slowest one)
    step(N)    = k (local(b_N) s(N) + wait(N) + exposed(N))          k: timed step / sum of the parts, their
                                                                      mean over the measured trials;
                                                                      s(N): compute slowdown the caller knows
                                                                      of (cores shared; 1 on real clusters)
    X(N)       = units per step at N (the global batch, for samples/s) / step(N)

Layouts (``Layout``): the measured one by default (the workers per node the sweep ran with). A what-if gives
workers per node and the link rate between nodes (and within one): a ring across nodes is as fast as its
slowest link, so B = min(intra, inter) once the workers span nodes, intra within one. A given link rate
becomes a bus bandwidth through the measured efficiency (measured B / the rate it was measured over) where
that rate is known (``measured_link_bps``), else it is taken as the bus bandwidth itself.

The band is a bootstrap over the measured trials (one trial per count drawn with replacement, k perturbed by
its spread over trials, at least 3%): the 10th to 90th percentile of the refitted predictions.
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
    beta_s_per_byte: Optional[float]
    nodes: int

    @property
    def step_ms(self) -> float:
        return 1e3 * self.units_per_step / self.throughput

    @property
    def parts_ms(self) -> float:
        return self.local_ms + self.wait_ms + self.exposed_ms


def from_record(record, metric: str, throughput: float) -> Optional[Trial]:
    """A Trial from a TrialRecord with a breakdown of its step (None without one)."""
    b = record.get("breakdown") or {}
    if b.get("compute_ms") is None or throughput <= 0 or metric not in ("samples_per_sec", "steps_per_sec"):
        return None
    bench = b.get("collective") or {}
    alpha = beta = None
    if bench.get("alpha_us") is not None and bench.get("beta_ns_per_kib") is not None:
        alpha, beta = 1e-6 * bench["alpha_us"], 1e-9 * bench["beta_ns_per_kib"] / 1024
    units = (record.get("global_batch") or 0) if metric == "samples_per_sec" else 1
    if not units:
        return None
    return Trial(workers=record.workers, per_worker_batch=float(record.get("per_worker_batch") or units),
                 units_per_step=float(units), throughput=float(throughput),
                 local_ms=float((b.get("input_ms") or 0.0) + b["compute_ms"]), wait_ms=float(b.get("wait_ms") or 0.0),
                 exposed_ms=float(b.get("exposed_comm_ms") or 0.0), gradient_bytes=b.get("gradient_bytes"),
                 alpha_s=alpha, beta_s_per_byte=beta, nodes=max(1, len(record.get("nodes") or [])))


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
    k: float
    k_spread: float
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
            local = self.local_ms(n)
            return (local**self.gamma + comm**self.gamma) ** (1 / self.gamma) - local
        return (1 - self.overlap) * comm

    def step_ms(self, n: int) -> float:
        wait = self.wait_ms if n > 1 else 0.0
        return self.k * (self.local_ms(n) * self.slowdown(n) + wait + self.exposed_ms(n))

    def predict(self, workers: int) -> float:
        n = int(workers)
        return 1e3 * self.units_per_step(n) / self.step_ms(n)

    def parts(self, workers: int) -> dict:
        n = int(workers)
        return {"local_ms": self.local_ms(n) * self.slowdown(n), "wait_ms": self.wait_ms if n > 1 else 0.0,
                "comm_ms": self.comm_ms(n), "exposed_comm_ms": self.exposed_ms(n), "k": self.k,
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
                           "wait_ms": self.wait_ms, "k": self.k,
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
    multi = [t for t in trials if t.workers > 1 and t.alpha_s is not None and t.beta_s_per_byte and t.gradient_bytes]
    if not multi or not trials:
        return None
    by_batch: dict[float, list[float]] = {}
    for t in trials:
        by_batch.setdefault(t.per_worker_batch, []).append(t.local_ms)
    c0, c1 = _linear(list(by_batch), [statistics.fmean(v) for v in by_batch.values()])
    hop = statistics.fmean(t.alpha_s / (2 * (t.workers - 1)) for t in multi)
    bus = statistics.fmean(bus_factor(t.workers) / t.beta_s_per_byte for t in multi)
    size = int(multi[0].gradient_bytes)
    comms = [comm_ms(t.workers, size, hop, bus) for t in multi]
    overlap = statistics.fmean(min(1.0, max(0.0, 1 - t.exposed_ms / c)) for t, c in zip(multi, comms))
    gamma = _gamma([(t.local_ms, c, t.local_ms + t.exposed_ms) for t, c in zip(multi, comms)])
    top = max(t.workers for t in multi)
    wait = statistics.fmean(t.wait_ms for t in multi if t.workers == top)
    ks = [t.step_ms / t.parts_ms for t in trials if t.parts_ms > 0]
    k = statistics.fmean(ks)
    spread = max(K_FLOOR, statistics.stdev(ks) / k if len(ks) > 1 else 0.0)
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
                     overlap=overlap, gamma=gamma, wait_ms=wait, k=k, k_spread=spread,
                     measured_workers_per_node=per_node[-1] if per_node else None,
                     units_per_step=units_per_step, per_worker_batch=per_worker_batch, measured=counts, loo_error=loo)
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
        samples.append(replace(refit, k=refit.k * (1 + rng.normal(0, model.k_spread))))
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
