"""Pure scaling math: trial records in, curves out. No Ray, no files.

For a curve with baseline b (the smallest worker count measured, normally 1) and mean throughput X(N):

    speedup(N)    = X(N) / X(b)
    efficiency(N) = X(N) / ((N / b) * X(b))          = X(N) / (N * X(1)) when b = 1

Throughput is samples/s where samples are counted, else steps (reports) per second. With a fixed data set
and a step rate, efficiency = t(1) / (N * t(N)), the strong-scaling form, since rate = 1 / t.
Spread is the sample standard deviation over repeats; the efficiency's spread propagates both
relative spreads (first order).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Optional

from orchestrator.spec import DEFAULT_EXECUTION, execution_key


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


def record_label(record: dict) -> str:
    return label(record["framework"], record["strategy"], record.get("execution"))


def curve_key(record: dict) -> tuple:
    """Which curve a trial record (or a curve's dict) belongs to."""
    return (record["framework"], record["strategy"], record.get("execution"), record["workload"])


@dataclass(frozen=True)
class Curve:
    framework: str
    strategy: str
    execution: Optional[str]
    """eager, compiled or xla for built-in workloads; None for a user's function."""
    workload: str
    metric: str
    baseline_workers: int
    points: list[Point]

    @property
    def key(self) -> tuple:
        return (self.framework, self.strategy, self.execution, self.workload)

    @property
    def name(self) -> str:
        """``torch/ddp``, or ``torch/ddp/compiled`` off the framework's default execution."""
        return execution_key(self.framework, self.strategy, self.execution)

    @property
    def label(self) -> str:
        return label(self.framework, self.strategy, self.execution)

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
            "baseline_workers": self.baseline_workers,
            "points": [p.to_dict() for p in self.points],
        }


def _mean_std(values: list[float]) -> tuple[float, Optional[float]]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def curves(records: list[dict]) -> list[Curve]:
    """One curve per (framework, strategy, execution, workload), from the successful trials only."""
    grouped: dict[tuple, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record.get("status") == "ok":
            grouped[curve_key(record)][record["workers"]].append(record)
    result = []
    for (framework, strategy, execution, workload), by_workers in sorted(grouped.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        trials = [r for rs in by_workers.values() for r in rs]
        metric = "samples_per_sec" if all(r.get("samples_per_sec") is not None for r in trials) else "steps_per_sec"
        baseline = min(by_workers)
        base_mean, base_std = _mean_std([r[metric] for r in by_workers[baseline]])
        points = []
        for workers in sorted(by_workers):
            rows = by_workers[workers]
            mean, std = _mean_std([r[metric] for r in rows])
            efficiency = mean / ((workers / baseline) * base_mean)
            efficiency_std = None
            if std is not None and base_std is not None and workers != baseline:
                efficiency_std = efficiency * math.hypot(std / mean, base_std / base_mean)
            elif std is not None and workers == baseline:
                efficiency_std = std / mean
            accuracies = [r["test_accuracy"] for r in rows if r.get("test_accuracy") is not None]
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
                    step_time_mean_s=statistics.fmean(r["step_time_mean_s"] for r in rows),
                    test_accuracy=statistics.fmean(accuracies) if accuracies else None,
                )
            )
        result.append(Curve(framework, strategy, execution, workload, metric, baseline, points))
    return result


@dataclass(frozen=True)
class Comparison:
    """Two curves of the same job at their largest common worker count."""

    workers: int
    faster: str
    slower: str
    throughput_ratio: float
    """faster / slower throughput at ``workers``."""
    better_scaling: str
    efficiency_gap: float
    """Efficiency of ``better_scaling`` minus the other's, at ``workers``."""

    def to_dict(self) -> dict:
        return asdict(self)


def compare(all_curves: list[Curve]) -> list[Comparison]:
    out = []
    for i, a in enumerate(all_curves):
        for b in all_curves[i + 1 :]:
            # One results file holds one job, so every pair of curves is the same work in two ways.
            if a.metric != b.metric:
                continue
            common = sorted({p.workers for p in a.points} & {p.workers for p in b.points})
            if not common:
                continue
            n = common[-1]
            pa, pb = a.point(n), b.point(n)
            fast, slow = (a, b) if pa.throughput >= pb.throughput else (b, a)
            pf, ps = fast.point(n), slow.point(n)
            good, bad = (a, b) if pa.efficiency >= pb.efficiency else (b, a)
            out.append(
                Comparison(
                    workers=n,
                    faster=fast.label,
                    slower=slow.label,
                    throughput_ratio=pf.throughput / ps.throughput,
                    better_scaling=good.label,
                    efficiency_gap=good.point(n).efficiency - bad.point(n).efficiency,
                )
            )
    return out
