"""Pure scaling math: trial records in, curves out. No Ray, no files.

For a curve with baseline b (the smallest worker count measured, normally 1) and mean throughput X(N):

    speedup(N)    = X(N) / X(b)
    efficiency(N) = X(N) / ((N / b) * X(b))          = X(N) / (N * X(1)) when b = 1

Throughput is samples/s where samples are counted, else built-in steps per second, or, for a user's function
that counts no samples, its reports per second (a "step" is then the time between two reports). With a fixed
data set and a step rate, efficiency = t(1) / (N * t(N)), the strong-scaling form, since rate = 1 / t.
Two curves' throughputs are compared only in the same unit, and their efficiencies only on the same baseline
and scaling mode (``comparable_throughput``, ``comparable_efficiency``).
Spread is the sample standard deviation over repeats; the efficiency's spread propagates both
relative spreads (first order).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Optional

from orchestrator.measuring import results
from orchestrator.job.spec import DEFAULT_EXECUTION, execution_key


@dataclass(frozen=True)
class Point:
    workers: int
    repeats: int
    metric: str
    throughput: float
    throughput_std: Optional[float]
    speedup: float
    efficiency: float
    efficiency_std: Optional[float]
    step_time_mean_s: float
    test_accuracy: Optional[float]

    def to_dict(self) -> dict:
        out = asdict(self)
        out[self.metric] = self.throughput
        out[f"{self.metric}_std"] = self.throughput_std
        return out


def label(framework: str, strategy: str, execution: Optional[str]) -> str:
    """How people read a curve's name: ``torch ddp``, ``torch ddp (compiled)`` off the default execution."""
    text = f"{framework} {strategy}"
    if execution and execution != DEFAULT_EXECUTION.get(framework):
        text += f" ({execution})"
    return text


def record_label(record) -> str:
    record = results.typed([record])[0]
    return label(record.framework, record.strategy, record.execution)


@dataclass(frozen=True)
class Curve:
    framework: str
    strategy: str
    execution: Optional[str]
    """eager, compiled or xla for built-in workloads; None for a user's function."""
    workload: str
    metric: str
    """samples_per_sec, steps_per_sec (built-in steps) or reports_per_sec (a user function's reports)."""
    baseline_workers: int
    points: list[Point]
    scaling: Optional[str] = None
    """weak or strong (None: unknown, from records written before it was recorded)."""
    records: tuple = field(default=(), repr=False, compare=False)
    """The successful trials the curve was built from (latest record of each trial id)."""

    @property
    def name(self) -> str:
        """The arm key: ``torch/ddp``, or ``torch/ddp/compiled`` off the framework's default execution."""
        return execution_key(self.framework, self.strategy, self.execution)

    @property
    def key(self) -> tuple:
        return (self.name, self.workload)

    @property
    def label(self) -> str:
        return label(self.framework, self.strategy, self.execution)

    @property
    def unit(self) -> str:
        return results.UNITS[self.metric]

    def point(self, workers: int) -> Optional[Point]:
        return next((p for p in self.points if p.workers == workers), None)

    def to_dict(self) -> dict:
        return {
            "framework": self.framework,
            "strategy": self.strategy,
            "execution": self.execution,
            "name": self.name,
            "label": self.label,
            "workload": self.workload,
            "metric": self.metric,
            "unit": self.unit,
            "scaling": self.scaling,
            "baseline_workers": self.baseline_workers,
            "efficiency_formula": efficiency_formula(self.baseline_workers),
            "points": [p.to_dict() for p in self.points],
        }


def efficiency_formula(baseline: int) -> str:
    """The efficiency a curve reports, written out for its baseline."""
    if baseline == 1:
        return "X(N) / (N · X(1))"
    return f"X(N) / ((N / {baseline}) · X({baseline}))"


def _mean_std(values: list[float]) -> tuple[float, Optional[float]]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def rate(record: results.TrialRecord, metric: str) -> float:
    """A record's throughput in ``metric`` (a curve mixing records with and without sample counts is
    measured in steps for all of them)."""
    if metric == record.metric:
        return record.throughput
    return record.get("steps_per_sec")


def _curve_metric(trials: list[results.TrialRecord]) -> str:
    metrics = {r.metric for r in trials}
    if metrics == {"samples_per_sec"}:
        return "samples_per_sec"
    return "reports_per_sec" if "reports_per_sec" in metrics else "steps_per_sec"


def curves(records) -> list[Curve]:
    """One curve per (arm, workload), from the successful trials only; the latest record of each trial id
    wins (a rerun replaces the record it reran)."""
    grouped: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for record in results.latest(records).ok:
        grouped[(record.arm, record.workload)][record.workers].append(record)
    result = []
    for _, by_workers in sorted(grouped.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        trials = [r for rs in by_workers.values() for r in rs]
        metric = _curve_metric(trials)
        modes = {r.scaling for r in trials if r.scaling}
        baseline = min(by_workers)
        base_mean, base_std = _mean_std([rate(r, metric) for r in by_workers[baseline]])
        points = []
        for workers in sorted(by_workers):
            rows = by_workers[workers]
            mean, std = _mean_std([rate(r, metric) for r in rows])
            efficiency = mean / ((workers / baseline) * base_mean)
            efficiency_std = None
            if std is not None and base_std is not None and workers != baseline:
                efficiency_std = efficiency * math.hypot(std / mean, base_std / base_mean)
            elif std is not None and workers == baseline:
                efficiency_std = std / mean
            accuracies = [r.test_accuracy for r in rows if r.test_accuracy is not None]
            points.append(
                Point(
                    workers=workers,
                    repeats=len(rows),
                    metric=metric,
                    throughput=mean,
                    throughput_std=std,
                    speedup=mean / base_mean,
                    efficiency=efficiency,
                    efficiency_std=efficiency_std,
                    step_time_mean_s=statistics.fmean(r.step_time_mean_s for r in rows),
                    test_accuracy=statistics.fmean(accuracies) if accuracies else None,
                )
            )
        first = trials[0]
        result.append(Curve(first.framework, first.strategy, first.execution, first.workload, metric, baseline,
                            points, scaling=modes.pop() if len(modes) == 1 else None, records=tuple(trials)))
    return result


def comparable_throughput(a: Curve, b: Curve) -> Optional[str]:
    """None when the two curves' throughputs can be compared; otherwise why not, in words."""
    if a.metric != b.metric:
        counted = [c for c in (a, b) if c.metric == "samples_per_sec"]
        other = b if counted and counted[0] is a else a
        if counted:
            return (f"{other.label} reports no sample count ({other.unit}) while {counted[0].label} counts "
                    "samples/s: their throughputs are in different units")
        return f"{a.label} is measured in {a.unit} and {b.label} in {b.unit}: different units"
    if a.metric != "samples_per_sec" and a.workload != b.workload:
        return (f"{a.label} and {b.label} are different functions measured in {a.unit}: one {a.unit[:-2]} is "
                "not the same work in both")
    return None


def comparable_efficiency(a: Curve, b: Curve) -> Optional[str]:
    """None when the two curves' efficiencies are on the same footing; otherwise why not."""
    if a.baseline_workers != b.baseline_workers:
        return (f"{a.label}'s efficiency is relative to {a.baseline_workers} worker(s) and {b.label}'s to "
                f"{b.baseline_workers}: different baselines")
    if a.scaling and b.scaling and a.scaling != b.scaling:
        return f"{a.label} scales {a.scaling} and {b.label} {b.scaling}: different scaling modes"
    return None


@dataclass(frozen=True)
class Comparison:
    """Two curves of the same job at their largest common worker count."""

    workers: int
    curves: tuple[str, str]
    faster: Optional[str]
    slower: Optional[str]
    throughput_ratio: Optional[float]
    """faster / slower throughput at ``workers``; None where the units differ (``throughput_not_compared``)."""
    throughput_not_compared: Optional[str]
    better_scaling: Optional[str]
    worse_scaling: Optional[str]
    efficiency_gap: Optional[float]
    """Efficiency of ``better_scaling`` minus the other's, at ``workers``; None on different baselines."""
    efficiency_not_compared: Optional[str]

    def to_dict(self) -> dict:
        return asdict(self)


def compare(all_curves: list[Curve]) -> list[Comparison]:
    """Every pair of curves at their largest common worker count: throughput where the units agree,
    efficiency where the baselines and scaling modes do, and why not where they do not."""
    out = []
    for i, a in enumerate(all_curves):
        for b in all_curves[i + 1 :]:
            common = sorted({p.workers for p in a.points} & {p.workers for p in b.points})
            if not common:
                continue
            n = common[-1]
            pa, pb = a.point(n), b.point(n)
            throughput_reason = comparable_throughput(a, b)
            efficiency_reason = comparable_efficiency(a, b)
            faster = slower = ratio = None
            if throughput_reason is None:
                fast, slow = (a, b) if pa.throughput >= pb.throughput else (b, a)
                faster, slower = fast.label, slow.label
                ratio = fast.point(n).throughput / slow.point(n).throughput
            better = worse = gap = None
            if efficiency_reason is None:
                good, bad = (a, b) if pa.efficiency >= pb.efficiency else (b, a)
                better, worse = good.label, bad.label
                gap = good.point(n).efficiency - bad.point(n).efficiency
            out.append(
                Comparison(
                    workers=n, curves=(a.label, b.label), faster=faster, slower=slower, throughput_ratio=ratio,
                    throughput_not_compared=throughput_reason, better_scaling=better, worse_scaling=worse,
                    efficiency_gap=gap, efficiency_not_compared=efficiency_reason,
                )
            )
    return out
