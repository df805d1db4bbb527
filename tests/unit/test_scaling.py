"""Scaling math on hand-computed cases."""

import pytest

from orchestrator.modelling import scaling


def trial(workers, rate, framework="torch", strategy="ddp", repeat=0, metric="samples_per_sec", status="ok", acc=None):
    record = {"trial_id": f"{framework}-{strategy}-w{workers}-r{repeat}-{status}", "framework": framework,
              "strategy": strategy, "workload": "mlp", "workers": workers, "repeat": repeat,
              "status": status, "samples_per_sec": None, "steps_per_sec": 1.0, "step_time_mean_s": 0.01,
              "test_accuracy": acc}
    record[metric] = rate
    return record


def test_efficiency_and_speedup_weak_scaling():
    # 1 worker: 100 and 120 samples/s (mean 110). 2 workers: 200 and 200 (mean 200). 4 workers: 330.
    records = [trial(1, 100), trial(1, 120, repeat=1), trial(2, 200), trial(2, 200, repeat=1), trial(4, 330)]
    (curve,) = scaling.curves(records)
    p1, p2, p4 = curve.points
    assert p1.throughput == pytest.approx(110) and p1.speedup == 1 and p1.efficiency == 1
    assert p1.throughput_std == pytest.approx(14.1421356)  # stdev([100, 120]) = sqrt(200)
    assert p2.speedup == pytest.approx(200 / 110)
    assert p2.efficiency == pytest.approx(200 / (2 * 110))  # 0.909...
    assert p4.efficiency == pytest.approx(330 / (4 * 110))  # 0.75
    assert p4.throughput_std is None and p4.repeats == 1
    # 2 workers have no spread (200, 200), so the efficiency spread is the baseline's relative spread.
    assert p2.efficiency_std == pytest.approx(p2.efficiency * (14.1421356 / 110))


def test_baseline_above_one_worker():
    (curve,) = scaling.curves([trial(2, 100), trial(4, 180)])
    assert curve.baseline_workers == 2
    assert curve.points[1].efficiency == pytest.approx(180 / (2 * 100))  # 0.9


def test_strong_scaling_time_form_matches_rate_form():
    # A fixed data set: an epoch takes t(1) = 10 s on 1 worker, t(4) = 3 s on 4 workers.
    # Efficiency t(1) / (N t(N)) = 10 / 12 = 0.8333; the step rate is 1/t.
    records = [trial(1, 1 / 10, metric="steps_per_sec"), trial(4, 1 / 3, metric="steps_per_sec")]
    for r in records:
        r["samples_per_sec"] = None
    (curve,) = scaling.curves(records)
    assert curve.metric == "reports_per_sec" and curve.unit == "reports/s"  # a user function's report intervals
    assert curve.points[1].efficiency == pytest.approx(10 / (4 * 3))


def test_failed_trials_are_left_out():
    (curve,) = scaling.curves([trial(1, 100), trial(2, 1, status="failed"), trial(2, 150)])
    assert [p.throughput for p in curve.points] == [100, 150]


def test_comparison_names_faster_and_better_scaling():
    records = [trial(1, 100), trial(2, 180),
               trial(1, 50, "tensorflow", "multi_worker_mirrored"), trial(2, 100, "tensorflow", "multi_worker_mirrored")]
    curves = scaling.curves(records)
    (c,) = scaling.compare(curves)
    assert c.workers == 2
    assert c.faster == "torch ddp" and c.throughput_ratio == pytest.approx(1.8)
    assert c.better_scaling == "tensorflow multi_worker_mirrored"
    assert c.efficiency_gap == pytest.approx(1.0 - 0.9)


def test_accuracy_is_averaged_over_repeats():
    (curve,) = scaling.curves([trial(1, 1, acc=0.9), trial(1, 1, repeat=1, acc=0.95)])
    assert curve.points[0].test_accuracy == pytest.approx(0.925)
