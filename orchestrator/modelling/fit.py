"""Pure: fit a scaling model to a measured curve, predict unmeasured worker counts, recommend a count.

Models of throughput X(N) (samples/s at N workers), from fewest parameters to most:

    amdahl   X(N) = X1 * N / (1 + s (N - 1))                     s: serial fraction
    usl      X(N) = X1 * N / (1 + s (N - 1) + k N (N - 1))       k: coherency (crosstalk) cost; X peaks
    pollux   T(N) = (Tc^g + Ts(N)^g)^(1/g),  Ts(N) = a + b (N - 1) for N > 1, 0 at N = 1
             X(N) = N * B / T(N)                                  (AdaptDL/Pollux step-time form, weak scaling;
                                                                   B cancels out: we fit X1 * N * Tc / T(N))

A model is only fitted when there are more distinct worker counts than its shape parameters, and among
those that can be fitted the one with the smallest leave-one-out error is kept (with two counts that is
Amdahl). The uncertainty band is a bootstrap over repeats, or, with one repeat, over perturbations as
large as the fit's residuals or its leave-one-out error, whichever is larger: the 10th to 90th percentile
of the refitted predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

BAND = (10, 90)
BOOTSTRAPS = 200


@dataclass(frozen=True)
class Model:
    name: str
    shape_params: int
    guess: tuple
    lower: tuple
    upper: tuple
    fn: Callable  # fn(n, x1, *shape) -> throughput


def _amdahl(n, x1, s):
    return x1 * n / (1 + s * (n - 1))


def _usl(n, x1, s, k):
    return x1 * n / (1 + s * (n - 1) + k * n * (n - 1))


def _pollux(n, x1, a, b, g):
    # Times in units of the compute time Tc = 1, so a and b are sync costs relative to compute.
    sync = np.where(n > 1, a + b * (n - 1), 0.0)
    step = (1.0 + sync**g) ** (1.0 / g)
    return x1 * n / step


MODELS = (
    # s above 1 lets Amdahl's form describe retrograde scaling (N workers slower than one), which small
    # models on shared cores show.
    Model("amdahl", 1, (0.1,), (0.0,), (10.0,), _amdahl),
    Model("usl", 2, (0.1, 0.001), (0.0, 0.0), (1.0, 1.0), _usl),
    Model("pollux", 3, (0.3, 0.05, 2.0), (0.0, 0.0, 1.0), (50.0, 50.0, 10.0), _pollux),
)


@dataclass
class Fit:
    model: str
    params: dict
    r2: float
    rmse_relative: float
    """Root mean square of (fitted - measured) / measured over the measured points."""
    loo_error: Optional[float]
    """Mean absolute relative error predicting each measured count from the others (None with 2 counts)."""
    measured: list[int]
    _predict: Callable = field(repr=False, default=None)
    loo_by_count: dict = field(default_factory=dict)
    """The chosen model's relative error predicting each measured count but the smallest from the others: the
    held-out set the physical model is scored on too (orchestrator.modelling.physics.held_out_counts)."""
    _samples: list = field(repr=False, default_factory=list)
    """Bootstrap refits: parameter vectors of the model, evaluated at whatever count a band is asked for."""

    def predict(self, workers: int) -> float:
        return float(self._predict(np.asarray(float(workers))))

    def band(self, workers: int) -> tuple[float, float]:
        """The 10th to 90th percentile of the bootstrap refits' predictions at ``workers`` (any count)."""
        if not self._samples:
            p = self.predict(workers)
            return (p, p)
        columns = np.asarray(self._samples, float).T  # one row per parameter, one column per refit
        values = np.broadcast_to(self._predict_with(np.asarray(float(workers)), columns), columns.shape[1:])
        low, high = np.percentile(values, BAND)
        return (float(low), float(high))

    _predict_with: Callable = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {"model": self.model, "params": self.params, "r2": self.r2, "rmse_relative": self.rmse_relative,
                "loo_error": self.loo_error, "measured_workers": self.measured}


def _fit_model(model: Model, n: np.ndarray, x: np.ndarray):
    from scipy.optimize import least_squares

    x1_guess = float(x[n == n.min()].mean() / n.min())

    def residuals(p):
        return (model.fn(n, *p) - x) / x  # relative: every count weighs alike

    start = (x1_guess, *model.guess)
    lower = (x1_guess * 0.01, *model.lower)
    upper = (x1_guess * 100, *model.upper)
    result = least_squares(residuals, start, bounds=(lower, upper), method="trf")
    return result.x


def models_for(scaling: Optional[str]) -> tuple[Model, ...]:
    """The models that describe a curve of this scaling mode. Pollux's step-time form holds the per-worker
    batch fixed while the sync cost grows with N: weak scaling only. Amdahl and USL hold for either."""
    return MODELS if scaling in (None, "weak") else tuple(m for m in MODELS if m.name != "pollux")


def fit_points(workers: list[int], throughputs: list[float], seed: int = 0, scaling: Optional[str] = None) -> Optional[Fit]:
    """Fit every repeat's measurement (``workers[i]`` gave ``throughputs[i]``). None with one count only.
    ``scaling`` (weak | strong) limits the models to those that describe it (``models_for``)."""
    n = np.asarray(workers, float)
    x = np.asarray(throughputs, float)
    counts = sorted(set(workers))
    if len(counts) < 2 or np.any(x <= 0):
        return None
    candidates = [m for m in models_for(scaling) if m.shape_params < len(counts)]
    best, best_score = None, math.inf
    for model in candidates:
        loo = _leave_one_out(model, n, x, counts)
        # Two counts give no held-out point: take the simplest model.
        score = loo if loo is not None else (0.0 if model is candidates[0] else math.inf)
        if score < best_score - 1e-9:
            best, best_score = (model, loo), score
    model, loo = best
    params = _fit_model(model, n, x)
    fitted = model.fn(n, *params)
    ss_res = float(((x - fitted) ** 2).sum())
    ss_tot = float(((x - x.mean()) ** 2).sum())
    names = {"amdahl": ("x1", "serial_fraction"), "usl": ("x1", "serial_fraction", "coherency"),
             "pollux": ("x1", "sync_base", "sync_per_worker", "gamma")}[model.name]
    result = Fit(
        model=model.name,
        params={k: float(v) for k, v in zip(names, params)},
        r2=1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0,
        rmse_relative=float(np.sqrt((((fitted - x) / x) ** 2).mean())),
        loo_error=loo,
        measured=counts,
        loo_by_count=_held_out(model, n, x, counts),
        _predict=lambda w, p=params, f=model.fn: f(w, *p),
        _predict_with=lambda w, columns, f=model.fn: f(w, *columns),
    )
    # With one repeat a count's noise is unknown: perturb by the larger of the fit's residuals and its
    # leave-one-out error, which also carries how wrong the model's shape may be.
    result._samples = _bootstrap(model, n, x, params, seed, floor=max(0.02, loo or 0.0))
    return result


def fit_curve(curve) -> Optional[Fit]:
    """The fit of one orchestrator.modelling.scaling.Curve, from each of its trials in the curve's own unit (None where
    fewer than two worker counts were measured)."""
    from orchestrator.modelling.scaling import rate

    rows = curve.records
    return fit_points([r.workers for r in rows], [rate(r, curve.metric) for r in rows], scaling=curve.scaling)


def _leave_one_out(model: Model, n, x, counts) -> Optional[float]:
    if len(counts) - 1 <= model.shape_params:
        return None
    errors = []
    for held in counts:
        keep = n != held
        params = _fit_model(model, n[keep], x[keep])
        predicted = float(model.fn(np.asarray(float(held)), *params))
        errors.append(abs(predicted - x[~keep].mean()) / x[~keep].mean())
    return float(np.mean(errors))


def _held_out(model: Model, n, x, counts) -> dict:
    from orchestrator.modelling.physics import held_out_counts

    if len(counts) - 1 <= model.shape_params:
        return {}
    errors = {}
    for held in held_out_counts(counts):
        keep = n != held
        params = _fit_model(model, n[keep], x[keep])
        predicted = float(model.fn(np.asarray(float(held)), *params))
        errors[held] = abs(predicted - x[~keep].mean()) / x[~keep].mean()
    return errors


def _bootstrap(model: Model, n, x, params, seed: int, floor: float = 0.02) -> list:
    """Parameter vectors of the model refitted to resampled data; ``Fit.band`` evaluates them at any count."""
    rng = np.random.default_rng(seed)
    fitted = model.fn(n, *params)
    relative = (x - fitted) / fitted
    by_count = {c: np.flatnonzero(n == c) for c in sorted(set(n.tolist()))}
    repeated = all(len(v) > 1 for v in by_count.values())
    samples = []
    for _ in range(BOOTSTRAPS):
        if repeated:
            index = np.concatenate([rng.choice(v, len(v)) for v in by_count.values()])
            n_b, x_b = n[index], x[index]
        else:
            # One measurement per count: perturb it by the fit's relative residuals, at least ``floor``.
            scale = max(float(np.sqrt((relative**2).mean())), floor)
            n_b, x_b = n, x * (1 + rng.normal(0, scale, len(x)))
        try:
            samples.append(tuple(_fit_model(model, n_b, np.maximum(x_b, 1e-9))))
        except ValueError:
            continue
    return samples


@dataclass(frozen=True)
class Recommendation:
    threshold: float
    max_workers: int
    workers_above_threshold: int
    """The largest N whose predicted efficiency is at least ``threshold``."""
    knee: int
    """The smallest N after which one more worker adds less than half of one worker's throughput."""
    peak: int
    """The smallest N within 0.1% of the highest predicted throughput (up to ``max_workers``)."""
    predicted_throughput: float
    predicted_efficiency: float
    band: tuple[float, float]

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold, "max_workers": self.max_workers,
            "workers": self.workers_above_threshold, "knee": self.knee, "peak": self.peak,
            "predicted_throughput": self.predicted_throughput, "predicted_efficiency": self.predicted_efficiency,
            "band": list(self.band),
        }


def efficiency(fit: Fit, workers: int, baseline: int = 1) -> float:
    return fit.predict(workers) / ((workers / baseline) * fit.predict(baseline))


def recommend(fit: Fit, threshold: float = 0.8, max_workers: int = 64, baseline: int = 1,
              counts: Optional[list[int]] = None) -> Recommendation:
    """The largest count whose predicted efficiency meets ``threshold``, the knee (where one more worker adds
    less than half of one worker's throughput) and the peak, over ``counts`` (the counts the job accepts:
    ``accepted_counts``; default 1..max_workers)."""
    counts = sorted(counts) if counts else list(range(1, max_workers + 1))
    above = [n for n in counts if efficiency(fit, n, baseline) >= threshold - 1e-12]
    best = max(above) if above else counts[0]
    x1 = fit.predict(1)
    knee = next((n for n, m in zip(counts, counts[1:]) if (fit.predict(m) - fit.predict(n)) / (m - n) < 0.5 * x1),
                counts[-1])
    top = max(fit.predict(n) for n in counts)
    peak = next(n for n in counts if fit.predict(n) >= 0.999 * top)
    return Recommendation(
        threshold=threshold, max_workers=max_workers, workers_above_threshold=best, knee=knee, peak=peak,
        predicted_throughput=fit.predict(best), predicted_efficiency=efficiency(fit, best, baseline),
        band=fit.band(best),
    )


def next_count_to_measure(fit: Fit, candidates: list[int], measured: list[int]) -> Optional[int]:
    """Adaptive sweeps: the unmeasured candidate where the prediction is least certain (widest relative band)."""
    open_counts = [c for c in candidates if c not in measured]
    if not open_counts:
        return None

    def width(c: int) -> float:
        low, high = fit.band(c)
        return (high - low) / max(fit.predict(c), 1e-12)

    return max(open_counts, key=lambda c: (width(c), -c))


def allocate(jobs: dict[str, tuple[Fit, float]], capacity: float) -> dict[str, int]:
    """Share a cluster: workers per job maximising the sum of predicted throughput relative to each job's
    1-worker throughput. ``jobs`` maps a name to (fit, CPUs per worker). Every job first gets one worker;
    then each further worker goes to the job it adds the most to, per CPU. Greedy is optimal while each
    curve's marginal gain falls as it grows (every model above is concave until its peak, and a job past
    its peak adds nothing)."""
    allocation = {name: 0 for name in jobs}
    used = 0.0
    # Every job runs: one worker each first, while they fit.
    for name, (_, cpus) in jobs.items():
        if used + cpus <= capacity + 1e-9:
            allocation[name], used = 1, used + cpus
    while True:
        best, best_key = None, (1e-12, 0)
        for name, (fit, cpus) in jobs.items():
            n = allocation[name]
            if n == 0 or used + cpus > capacity + 1e-9:
                continue
            gain = (fit.predict(n + 1) - fit.predict(n)) / fit.predict(1) / cpus
            key = (round(gain, 9), -n)  # ties go to the job with fewer workers
            if key > best_key:
                best, best_key = name, key
        if best is None:
            return allocation
        allocation[best] += 1
        used += jobs[best][1]
