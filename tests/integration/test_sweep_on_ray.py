"""Sweeps on a real local Ray cluster: both frameworks at 1 and 2 workers, user functions, failures."""

import json

import pytest

from orchestrator import report
from orchestrator.job import spec
from orchestrator.measuring import results
from orchestrator.running import scheduler
from orchestrator.errors import ClusterTooSmall

pytestmark = pytest.mark.ray

# 2-worker training must reach the same accuracy as 1-worker training, within 0.03: the digits test split
# has 360 images, so 0.03 is 11 images. The 2-worker runs see a global batch twice as large (weak scaling)
# in a different order, which moves a handful of borderline images either way; a broken all-reduce
# (workers drifting apart, or gradients summed instead of averaged) costs far more than that.
ACCURACY_FLOOR = 0.9
ACCURACY_TOLERANCE = 0.03

DIGITS = {
    "name": "digits-it",
    "arms": [{"framework": "torch", "strategy": "ddp"}, {"framework": "tensorflow", "strategy": "multi_worker_mirrored"}],
    "workload": {"model": "mlp", "params": {"hidden": [64]}},
    "dataset": {"name": "digits"},
    "batch": {"per_worker": 32},
    "training": {"steps": 200, "warmup_steps": 20, "report_every": 50, "learning_rate": 0.05},
    "sweep": {"workers": [1, 2], "repeats": 1},
    "deploy": {"export": False},  # exports are tested in test_beyond_speed.py; here they would only cost time
}


@pytest.fixture(scope="module")
def digits_sweep(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    outcome = scheduler.sweep(spec.parse(DIGITS), out)
    return outcome, results.read(out), out


def test_every_trial_ran_on_the_planned_workers(digits_sweep):
    outcome, records, _ = digits_sweep
    assert not outcome.failed, [r["error"] for r in outcome.failed]
    assert sorted((r["framework"], r["workers"]) for r in records) == [
        ("tensorflow", 1), ("tensorflow", 2), ("torch", 1), ("torch", 2)]
    for record in records:
        assert [w["rank"] for w in record["per_worker"]] == list(range(record["workers"]))
        assert record["measured_steps"] == 200 - 20
        assert record["samples_per_sec"] > 0 and record["step_time_mean_s"] > 0
        # each worker's own throughput is recorded and sums to the trial's
        assert sum(w["samples_per_sec"] for w in record["per_worker"]) == pytest.approx(record["samples_per_sec"])


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_two_workers_learn_digits_as_well_as_one(digits_sweep, framework):
    _, records, _ = digits_sweep
    accuracy = {r["workers"]: r["test_accuracy"] for r in records if r["framework"] == framework}
    assert accuracy[2] > ACCURACY_FLOOR
    assert abs(accuracy[2] - accuracy[1]) <= ACCURACY_TOLERANCE, accuracy


def test_reports_agree_with_results(digits_sweep):
    _, records, out = digits_sweep
    data = json.loads((out / "report.json").read_text())
    for curve in data["curves"]:
        for point in curve["points"]:
            (trial,) = [r for r in records if r["framework"] == curve["framework"] and r["workers"] == point["workers"]]
            assert point["samples_per_sec"] == pytest.approx(trial["samples_per_sec"])
        one, two = curve["points"]
        assert two["efficiency"] == pytest.approx(two["samples_per_sec"] / (2 * one["samples_per_sec"]))


def test_resumed_sweep_skips_finished_trials(digits_sweep):
    _, records, out = digits_sweep
    before = (out / "report.json").read_bytes()
    again = scheduler.sweep(spec.parse(DIGITS), out)
    assert again.ran == [] and len(again.skipped) == len(records)
    assert (out / "report.json").read_bytes() == before


USER = {
    "name": "user-it",
    "arms": [
        {"framework": "torch", "strategy": "ddp", "entrypoint": "jobs.examples.torch_user:train_func"},
        {"framework": "tensorflow", "strategy": "multi_worker_mirrored", "entrypoint": "jobs.examples.tf_user:train_func"},
    ],
    "workload": {"entrypoint": "jobs.examples.torch_user:train_func", "config": {"epochs": 4}, "samples_metric": "num_samples"},
    "training": {"warmup_steps": 1},
    "sweep": {"workers": [1, 2]},
}


def test_user_functions_swept_in_both_frameworks(ray_session, tmp_path):
    outcome = scheduler.sweep(spec.parse(USER), tmp_path)
    assert not outcome.failed, [r["error"] for r in outcome.failed]
    records = results.read(tmp_path)
    assert len(records) == 4
    for record in records:
        # 4 epoch reports: the stretch before the first is set-up, one more is warm-up, two are measured
        assert record["measured_steps"] == 2
        assert record["samples_per_sec"] > 0
    data = report.build(records)
    assert {c["framework"] for c in data["curves"]} == {"torch", "tensorflow"}
    assert all(c["metric"] == "samples_per_sec" for c in data["curves"])


def test_user_function_without_sample_counts_is_measured_in_reports_per_second(ray_session, tmp_path):
    job = {**USER, "arms": USER["arms"][:1], "sweep": {"workers": [1]},
           "workload": {"entrypoint": "jobs.examples.torch_user:train_func", "config": {"epochs": 3}}}
    scheduler.sweep(spec.parse(job), tmp_path)
    (record,) = results.read(tmp_path)
    assert record["status"] == "ok" and record["samples_per_sec"] is None and record["steps_per_sec"] > 0
    assert json.loads((tmp_path / "report.json").read_text())["curves"][0]["metric"] == "reports_per_sec"


def test_failing_trial_is_recorded_and_the_sweep_goes_on(ray_session, tmp_path):
    job = {**USER, "arms": [{"framework": "torch", "strategy": "ddp", "entrypoint": "tests.integration.failing:train_func"}],
           "sweep": {"workers": [1]}}
    outcome = scheduler.sweep(spec.parse(job), tmp_path)
    (record,) = results.read(tmp_path)
    assert record["status"] == "failed" and "deliberate failure at epoch 1" in record["error"]
    assert outcome.failed and "Failed trials" in (tmp_path / "report.md").read_text()
    # What the worker wrote before it failed is kept, where a successful trial's files go.
    kept = f"logs/{record['trial_id']}/last_words.txt"
    assert record["artifacts"]["files"] == [kept]
    assert (tmp_path / kept).read_text() == "rank 0 got to epoch 1\n"


def test_mirrored_runs_two_replicas_in_one_worker(ray_session, tmp_path):
    job = {**DIGITS, "arms": [{"framework": "tensorflow", "strategy": "mirrored"}], "sweep": {"workers": [2]},
           "training": {"steps": 60, "warmup_steps": 10, "report_every": 30}}
    outcome = scheduler.sweep(spec.parse(job), tmp_path)
    assert not outcome.failed, [r["error"] for r in outcome.failed]
    (record,) = results.read(tmp_path)
    assert record["ray_workers"] == 1 and len(record["per_worker"]) == 1
    assert record["global_batch"] == 64


def test_worker_count_beyond_the_cluster_is_refused_before_anything_starts(ray_session, tmp_path):
    job = {**DIGITS, "sweep": {"workers": [1, 3]}}
    with pytest.raises(ClusterTooSmall, match=r"asks for 3 x \{CPU: 1\} = \{CPU: 3\}; the cluster has \{CPU: 2\}"):
        scheduler.sweep(spec.parse(job), tmp_path)
    assert results.read(tmp_path) == []


def test_adaptive_sweep_chooses_counts_and_reports_the_saving(ray_session, tmp_path):
    job = {
        "name": "adaptive-it", "arms": [{"framework": "torch", "strategy": "ddp"}],
        "workload": {"model": "mlp", "params": {"hidden": [32]}},
        "dataset": {"name": "synthetic", "num_samples": 1024}, "batch": {"per_worker": 32},
        "training": {"steps": 40, "warmup_steps": 10, "report_every": 20},
        "sweep": {"workers": [1, 2, 3, 4], "adaptive": True}, "deploy": {"export": False},
        "resources": {"cpus_per_worker": 0.5, "threads_per_worker": 1},
    }
    outcome = scheduler.sweep(spec.parse(job), tmp_path)
    records = results.read(tmp_path)
    measured = [r["workers"] for r in records]
    assert measured[:2] == [1, 2] and len(measured) == len(set(measured)) <= 4
    assert outcome.decisions[-1].startswith("torch/ddp: stopped")
    data = json.loads((tmp_path / "report.json").read_text())
    (arm,) = data["adaptive"]
    assert arm["planned_trials"] == 4 and arm["trials_run"] == len(records)
    assert arm["trials_saved"] == 4 - len(records)
    # fractional CPUs: 3 and 4 half-CPU workers with a thread each share the 2 cores
    assert any(s["shares_cores"] for s in data["settings"]) or max(measured) <= 2
