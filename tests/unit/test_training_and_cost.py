"""From the answer to the run (pure parts): the training plan, time to target and statistical efficiency on
hand-computed records, the cost arithmetic and both recommendations, the training RayJob, and bad input."""

import json

import pytest
import yaml

from orchestrator.job import plan, spec
from orchestrator.measuring import measure, results
from orchestrator.modelling import analysis, cost
from orchestrator.running import training
from orchestrator.cli import main
from orchestrator.errors import UserError
from orchestrator.workloads.target import TargetClock
from tests.conftest import ROOT
from tests.unit.test_report import record


def job(**changes):
    data = yaml.safe_load((ROOT / "jobs/digits-mlp.yaml").read_text())
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return spec.parse(data)


def test_a_training_plan_is_one_fault_tolerant_run_that_keeps_its_name():
    one = plan.training_plan(job(launcher="actors"), "tensorflow/multi_worker_mirrored", 2)
    assert one.launcher == "ray_train" and one.max_failures == plan.TRAIN_MAX_FAILURES
    assert one.workers == 2 and one.framework == "tensorflow" and one.breakdown is None
    assert one.train_config["checkpoint_every"] == job().training.report_every  # every report where the job sets none
    assert one.run_name == "train-digits-mlp-tensorflow-multi_worker_mirrored-w2"
    assert one.controller_env  # Ray Train's timeouts, as a sweep's trial has them
    assert plan.training_plan(job(reliability={"max_failures": 1}), "torch/ddp", 1).max_failures == 1


def test_train_chooses_the_arm_and_refuses_what_cannot_run():
    two = job()
    with pytest.raises(UserError, match="has 2 arms .* pass --arm"):
        training.choose(two, None, 2, None)
    with pytest.raises(UserError, match="--arm 'jax/pmap': digits-mlp has no such arm"):
        training.choose(two, "jax/pmap", 2, None)
    with pytest.raises(UserError, match="pass --workers N, or --from-report DIR"):
        training.choose(two, "torch/ddp", None, None)
    assert training.choose(two, "torch/ddp", 2, None) == ("torch/ddp", 2)


def test_train_refuses_more_workers_than_the_cluster_before_anything_starts():
    # 16 workers of 1 CPU on a 2-CPU cluster: the sweep's own refusal (exit 2 through the CLI)
    one = plan.training_plan(job(), "torch/ddp", 16)
    with pytest.raises(UserError, match="asks for 16 x"):
        plan.check_fits([one], {"CPU": 2.0}, [{"CPU": 2.0}])
    # more workers than the data has batches for: refused while planning
    with pytest.raises(spec.SpecError, match="fewer than its batch of 64"):
        plan.training_plan(job(), "torch/ddp", 64)


def test_target_settings_and_refusals():
    with_target = job(training={"target": {"metric": "test_accuracy", "value": 0.9, "every": 25}})
    (first, *_) = plan.build(with_target)
    assert first.train_config["target"] == {"metric": "test_accuracy", "value": 0.9, "every": 25, "mode": "max"}
    assert plan.build(job())[0].train_config.get("target") is None  # a job without one plans as before
    with pytest.raises(spec.SpecError, match="training.target.metric 'f1': the built-in workloads report "
                                              "test_accuracy and loss"):
        job(training={"target": {"metric": "f1", "value": 0.9}})


def test_the_target_clock_times_from_the_first_touch_and_refuses_a_target_met_at_step_0():
    values = iter([0.1, 0.5, 0.93, 0.97])
    clock = TargetClock({"metric": "test_accuracy", "value": 0.9, "every": 10, "mode": "max", "stop": True},
                        lambda: next(values), samples_per_step=128)
    assert clock.check_start() is None  # 0.1 at step 0
    clock.touch()
    assert clock.after(5, 1.0) is None  # not an evaluation step
    assert clock.after(10, 1.0) is None  # 0.5
    hit = clock.after(20, 0.8)  # 0.93
    assert hit["step"] == 20 and hit["samples"] == 20 * 128 and hit["value"] == 0.93 and clock.stop
    assert clock.after(30, 0.7) is None  # once
    said = TargetClock({"metric": "test_accuracy", "value": 0.9, "every": 10}, lambda: 0.97, 64).check_start()
    assert "training.target: test_accuracy is already 0.97 at step 0" in said
    restored = TargetClock({"metric": "loss", "value": 0.5, "every": 1, "mode": "min"}, lambda: 0, 64,
                           {"elapsed_s": 12.0, "eval_s": 1.0, "hit": None})
    restored.touch()
    assert restored.after(3, 0.4)["seconds"] >= 12.0  # a restarted run keeps its clock


def _worker(rank, records, started=100.0):
    return {"rank": rank, "started_wall": started, "registered_wall": started, "sent_wall": started,
            "records": records}


def test_time_to_target_from_a_built_in_report_and_from_a_user_functions_reports():
    hit = {"metric": "test_accuracy", "value": 0.91, "target": 0.9, "step": 40, "samples": 5120, "seconds": 3.5,
           "eval_seconds": 0.2}
    target = {"metric": "test_accuracy", "value": 0.9, "every": 20, "mode": "max"}
    built_in = [[_worker(0, [{"wall": 101, "metrics": {"step": 20}}, {"wall": 102, "metrics": {"step": 40, "target_reached": hit}}])]]
    out = measure.time_to_target(built_in, target, "samples")
    assert out["reached"] and out["steps"] == 40 and out["samples"] == 5120 and out["seconds"] == 3.5
    # A user's function: the first report whose metric meets it; seconds from the function's start.
    user = [[_worker(0, [{"wall": 104.0, "metrics": {"acc": 0.5, "n": 100}},
                         {"wall": 107.5, "metrics": {"acc": 0.95, "n": 100}}])]]
    out = measure.time_to_target(user, {**target, "metric": "acc"}, "n")
    assert out["reached"] and out["steps"] == 2 and out["samples"] == 200 and out["seconds"] == pytest.approx(7.5)
    never = measure.time_to_target(user, {**target, "metric": "f1"}, "n")
    assert never["reached"] is False and never["reported"] is False


def _target_record(workers, seconds, samples, rate, repeat=0):
    return {**record("torch", "ddp", workers, repeat, rate), "execution": "eager", "scaling": "weak",
            "target": {"metric": "test_accuracy", "value": 0.9, "reached": True, "steps": samples // (64 * workers),
                       "samples": samples, "seconds": seconds}}


def test_statistical_efficiency_and_time_to_target_speedup_by_hand():
    # 1 worker: 6400 samples in 10 s; 2 workers: 8000 samples (a larger batch needs more) in 6 s.
    lines = [_target_record(1, 10.0, 6400, 1000.0), _target_record(2, 6.0, 8000, 1800.0)]
    data = analysis.analyze(results.latest(lines))
    one, two = data["time_to_target"]["rows"]
    assert two["statistical_efficiency"] == pytest.approx(6400 / 8000)
    assert two["speedup"] == pytest.approx(10 / 6) and one["speedup"] == pytest.approx(1.0)


def test_cost_arithmetic_and_both_answers_by_hand():
    rows = [{"workers": n, "seconds": s, "cost": c} for n, s, c in ((1, 3600, 1.0), (2, 2000, 1.2), (4, 1200, 1.8))]
    assert cost.cheapest_within(rows, 2400)["workers"] == 2  # 1 worker misses the 40 min deadline
    assert cost.cheapest_within(rows, None)["workers"] == 1
    assert cost.fastest_within(rows, 1.5)["workers"] == 2  # 4 workers cost 1.8
    assert cost.cheapest_within(rows, 60) is None and cost.fastest_within(rows, 0.5) is None
    assert cost.hourly({"CPU": 2.0, "GPU": 1.0}, 4, {"CPU": 0.05, "GPU": 2.5}) == pytest.approx(4 * (0.1 + 2.5))
    assert cost.seconds_for({"steps": 1000}, 1280.0, 128, None, None) == pytest.approx(100.0)
    assert cost.seconds_for({"epochs": 2}, 100.0, 64, None, 1000) == pytest.approx(20.0)
    assert cost.seconds_for({"target": True}, 100.0, 64, 5000, None) == pytest.approx(50.0)
    assert cost.duration("90m") == 5400 and cost.duration("2h") == 7200 and cost.duration("30") == 30


@pytest.mark.parametrize("text, message", [
    ("cpu=-1", "a price must be 0 or more"), ("cpu", "is not RESOURCE=PRICE"), ("cpu=abc", "is not a number"),
    ("", "no price given"),
])
def test_bad_prices_name_the_part(text, message):
    with pytest.raises(UserError, match=message):
        cost.parse(text)


def test_a_used_resource_without_a_price_is_refused():
    with pytest.raises(UserError, match="no price for GPU"):
        cost.hourly({"CPU": 1.0, "GPU": 1.0}, 2, {"CPU": 0.04})


def _priced_dir(tmp_path):
    for line in [record("torch", "ddp", 1, 0, 1000.0), record("torch", "ddp", 2, 0, 1800.0)]:
        results.append(tmp_path, line)
    return tmp_path


def test_recommend_prices_each_size_and_answers_deadline_and_budget(tmp_path, capsys):
    out = _priced_dir(tmp_path)
    # 1000 steps of 64 samples a worker: 1 worker 64 s at 0.04 CPU-hour, 2 workers 71.1 s at 0.08.
    assert main(["recommend", str(out), "--price", "cpu=0.04", "--train-steps", "1000", "--deadline", "60s",
                 "--budget", "0.0015", "--max-workers", "4"]) == 0
    said = capsys.readouterr().out
    data = json.loads((out / "report.json").read_text())
    rows = {r["workers"]: r for r in data["cost"]["rows"]}
    assert rows[1]["seconds"] == pytest.approx(64.0, rel=1e-3)
    assert rows[1]["cost"] == pytest.approx(0.04 * 64 / 3600, rel=1e-3)
    (answer,) = data["cost"]["answers"]
    assert answer["cheapest_within_deadline"] is None or answer["cheapest_within_deadline"]["seconds"] <= 60
    assert answer["fastest_within_budget"]["cost"] <= 0.0015
    assert "Training 1000 steps at CPU 0.04/h" in said
    md = (out / "report.md").read_text()
    assert "## What each size costs" in md
    assert "Cost against time to train" in (out / "report.html").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--price", "cpu=-0.1"], "a price must be 0 or more"),
    (["--train-steps", "100"], "no prices: pass --price"),
    (["--price", "cpu=1", "--deadline", "soon"], "--deadline 'soon': not a duration"),
    (["--price", "cpu=1", "--to-target"], "--to-target: no trial"),
    (["--price", "gpu=1"], "no price for CPU"),
])
def test_bad_cost_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    out = _priced_dir(tmp_path)
    assert main(["recommend", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_pricing_block_in_the_job_is_validated_and_carried_to_the_records():
    priced = job(pricing={"cpu": 0.04})
    assert plan.build(priced)[0].pricing == {"CPU": 0.04}
    with pytest.raises(spec.SpecError, match="pricing: .*a price must be a finite number, 0 or more"):
        job(pricing={"cpu": -1})


def test_k8s_render_from_report_gives_a_training_rayjob_at_the_recommended_size(tmp_path, capsys):
    out = _priced_dir(tmp_path / "sweep")
    assert main(["recommend", str(out)]) == 0
    rendered = tmp_path / "m.yaml"
    assert main(["k8s", "render", "jobs/digits-mlp.yaml", "--from-report", str(out), "-o", str(rendered)]) == 0
    docs = list(yaml.safe_load_all(rendered.read_text()))
    (ray_job,) = [d for d in docs if d["kind"] == "RayJob"]
    workers = json.loads((out / "report.json").read_text())["recommendations"][0]["workers"]
    assert ray_job["metadata"]["name"].endswith("-train")
    assert ray_job["spec"]["entrypoint"] == (f"orchestrator train /etc/orchestrator/jobs/job.yaml --arm torch/ddp "
                                            f"--workers {workers} --out /results/digits-mlp-train-torch-ddp-w{workers}")
    assert main(["k8s", "validate", str(rendered)]) == 0
    assert main(["k8s", "render", "jobs/digits-mlp.yaml", "--from-report", str(out), "--sweep", "-o", str(rendered)]) == 0
    (ray_job,) = [d for d in yaml.safe_load_all(rendered.read_text()) if d["kind"] == "RayJob"]
    assert ray_job["spec"]["entrypoint"].startswith("orchestrator sweep ")


def test_train_dry_run_shows_the_plan(capsys):
    assert main(["train", "jobs/digits-mlp.yaml", "--arm", "torch/ddp", "--workers", "2", "--dry-run"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run_name"] == "train-digits-mlp-torch-ddp-w2" and shown["training"]["launcher"]
    assert shown["out"] == "reports/digits-mlp-train-torch-ddp-w2"


@pytest.mark.parametrize("argv, message", [
    (["--workers", "2"], "pass --arm"),
    (["--arm", "torch/ddp"], "pass --workers N, or --from-report DIR"),
    (["--arm", "torch/ddp", "--workers", "0"], "argument --workers: '0': must be a whole number from 1 to 4096"),
    (["--arm", "torch/ddp", "--from-report", "/nonexistent", "--workers", "2"], "drop --workers"),
    (["--arm", "torch/ddp", "--from-report", "/nonexistent"], "no such directory"),
])
def test_bad_train_input_exits_2_with_one_line(capsys, argv, message):
    assert main(["train", "jobs/digits-mlp.yaml", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_target_met_at_step_0_is_the_trials_error_and_trains_exit_2():
    workers = [_worker(0, [{"wall": 101, "t": 1.0, "metrics": {"step": 0, "target_already_met":
               "training.target: test_accuracy is already 0.97 at step 0, which meets 0.9; raise training.target.value"}}])]
    with pytest.raises(measure.MeasurementError, match="already 0.97 at step 0"):
        measure.summarize(workers, 0, "samples", 100.0)
    one = plan.training_plan(job(training={"target": {"metric": "test_accuracy", "value": 0.9}}), "torch/ddp", 1)
    problem = training.bad_input({"status": "failed", "error": "training.target: test_accuracy is already 0.97 at "
                                  "step 0, which meets 0.9; raise training.target.value"}, one)
    assert problem.startswith("training.target: test_accuracy is already 0.97")
