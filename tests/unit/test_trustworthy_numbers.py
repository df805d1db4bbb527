"""Every number a report shows is true: one finding of issue 17 per test (each failed on the main it was
filed against), on results.jsonl files written the way a sweep writes them."""

import json

import pytest
import yaml

from orchestrator import report
from orchestrator.job import plan, spec
from orchestrator.measuring import measure, results
from orchestrator.modelling import analysis, fit, recommend, scaling
from orchestrator.running import scheduler
from orchestrator.cli import main
from orchestrator.errors import SpecError
from tests.conftest import ROOT
from tests.unit.test_report import record


def amdahl(n, x1, s):
    return x1 * n / (1 + s * (n - 1))


def user_record(framework, strategy, workers, repeat, rate, samples, entrypoint):
    """A user function's trial: samples/s where it counted samples, else reports/s."""
    r = record(framework, strategy, workers, repeat, rate, workload=entrypoint)
    r.update(samples_metric="num_samples", execution=None, per_worker_batch=None, global_batch=None)
    if not samples:
        r.update(samples_per_sec=None, steps_per_sec=rate)
    return r


# 1. Superseded records ---------------------------------------------------------------------------------

def test_a_rerun_replaces_the_records_it_reran_and_the_report_counts_the_old_ones(tmp_path):
    for n, rate in ((1, 1000), (2, 1800)):
        results.append(tmp_path, {**record("torch", "ddp", n, 0, rate), "steps": 100})
    # training.steps edited, the job rerun with the same --out: same trial ids, new plans
    for n, rate in ((1, 500), (2, 600)):
        results.append(tmp_path, {**record("torch", "ddp", n, 0, rate), "steps": 400})
    report.render(tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    (curve,) = data["curves"]
    assert [p["throughput"] for p in curve["points"]] == [500, 600]
    assert curve["points"][1]["efficiency"] == pytest.approx(600 / 1000)
    assert data["trials"] == {"ok": 2, "failed": 0, "superseded": 2, "stale": [], "torn_lines": []}
    assert len(results.read(tmp_path)) == 4  # nothing is lost
    assert "2 older record(s) of trials run again are left out" in (tmp_path / "report.md").read_text()
    assert [s["steps"] for s in data["settings"]] == [400, 400]


def test_a_trial_that_failed_then_succeeded_is_not_listed_as_failed(tmp_path):
    results.append(tmp_path, record("torch", "ddp", 1, 0, 1000))
    results.append(tmp_path, record("torch", "ddp", 2, 0, 0, status="failed"))
    results.append(tmp_path, record("torch", "ddp", 2, 0, 1700))
    data = report.build(results.read(tmp_path))
    assert data["failed_trials"] == [] and data["trials"]["failed"] == 0
    assert "Failed trials" not in (report.render(tmp_path) and (tmp_path / "report.md").read_text())


def test_a_success_rerun_into_a_failure_is_failed_and_resumed(tmp_path):
    results.append(tmp_path, record("torch", "ddp", 1, 0, 1000))
    results.append(tmp_path, record("torch", "ddp", 1, 0, 0, status="failed"))
    assert results.completed(results.read(tmp_path)) == {}
    assert report.build(results.read(tmp_path))["trials"] == {"ok": 0, "failed": 1, "superseded": 1, "stale": [], "torn_lines": []}


def test_version_1_lines_still_read():
    line = {k: v for k, v in record("tensorflow", "multi_worker_mirrored", 2, 0, 800).items()}
    line["execution"] = "compiled"
    parsed = results.parse(line)
    assert (parsed.arm, parsed.metric, parsed.throughput, parsed.scaling) == (
        "tensorflow/multi_worker_mirrored", "samples_per_sec", 800, None)


# 2. Units ---------------------------------------------------------------------------------------------

def _mixed_units(tmp_path):
    for n, rate in ((1, 3000.0), (2, 5000.0)):
        results.append(tmp_path, user_record("torch", "ddp", n, 0, rate, True, "jobs.examples.torch_user:train_func"))
    for n, rate in ((1, 1.0), (2, 1.6)):
        results.append(tmp_path, user_record("tensorflow", "multi_worker_mirrored", n, 0, rate, False,
                                             "jobs.examples.tf_user:train_func"))
    report.render(tmp_path)
    return json.loads((tmp_path / "report.json").read_text())


def test_throughputs_in_different_units_are_never_compared(tmp_path):
    data = _mixed_units(tmp_path)
    units = {c["framework"]: c["unit"] for c in data["curves"]}
    assert units == {"torch": "samples/s", "tensorflow": "reports/s"}
    (comparison,) = data["comparisons"]
    assert comparison["throughput_ratio"] is None and "different units" in comparison["throughput_not_compared"]
    assert comparison["efficiency_gap"] == pytest.approx(5000 / 6000 - 1.6 / 2)  # same baseline: compared
    verdict = data["verdict"]
    assert verdict["basis"] == "speedup" and "reports no sample count" in verdict["reason"]
    md = (tmp_path / "report.md").read_text()
    assert "the predicted throughput of" not in md and "Throughputs are not ranked" in md
    assert "reports no sample count" in md
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 3  # a throughput plot per unit, and one efficiency plot
    assert "samples/s or" not in page and "reports/s or" not in page


def test_the_sweep_says_at_its_start_which_arms_count_no_samples():
    job = spec.load(ROOT / "jobs/user-functions.yaml")
    with_samples = plan.build(job)
    assert scheduler.unit_notes(with_samples) == []
    data = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["workload"].pop("samples_metric")
    (note,) = scheduler.unit_notes(plan.build(spec.parse(data)))
    assert "torch/ddp" in note and "reports/s" in note
    # an arm whose function does not report the metric the job names is told once it ran
    tf = next(p for p in with_samples if p.framework == "tensorflow")
    told = scheduler.missing_samples_note(tf, {"status": "ok", "samples_per_sec": None})
    assert "did not report 'num_samples'" in told


def test_report_intervals_are_labelled_as_such(tmp_path):
    _mixed_units(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "ms between reports" in page and "reports/s" in page


# 3. Baselines -----------------------------------------------------------------------------------------

def test_efficiencies_on_different_baselines_are_not_ranked(tmp_path):
    for n, rate in ((1, 1000), (2, 1800), (4, 3000)):
        results.append(tmp_path, record("torch", "ddp", n, 0, rate))
    results.append(tmp_path, record("tensorflow", "multi_worker_mirrored", 1, 0, 0, status="failed"))
    for n, rate in ((2, 1500), (4, 2900)):
        results.append(tmp_path, record("tensorflow", "multi_worker_mirrored", n, 0, rate))
    report.render(tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    (comparison,) = data["comparisons"]
    assert comparison["efficiency_gap"] is None and "different baselines" in comparison["efficiency_not_compared"]
    assert comparison["throughput_ratio"] == pytest.approx(3000 / 2900)  # same unit: throughput still compared
    tf = next(c for c in data["curves"] if c["framework"] == "tensorflow")
    assert tf["baseline_workers"] == 2 and tf["efficiency_formula"] == "X(N) / ((N / 2) · X(2))"
    md = (tmp_path / "report.md").read_text()
    assert "X(N) / ((N / 2) · X(2))" in md and "efficiencies are not compared" in md
    assert "Efficiency = throughput(N) / (N × throughput(1))" not in md


# 4. Adaptive sweeps group by arm key --------------------------------------------------------------------

def test_adaptive_sweeps_keep_arms_that_differ_in_execution_apart():
    job = spec.parse({
        "name": "a", "arms": [{"framework": "torch", "strategy": "ddp"},
                              {"framework": "torch", "strategy": "ddp", "execution": "compiled"}],
        "workload": {"model": "mlp"}, "training": {"steps": 30, "warmup_steps": 5},
        "sweep": {"workers": [1, 2, 3, 4], "adaptive": True},
    })
    plans = plan.build(job)
    seen = []

    def run(p, index):
        seen.append(p.arm)
        rate = amdahl(p.workers, 1000 if p.execution == "eager" else 400, 0.1)
        return {**record(p.framework, p.strategy, p.workers, p.repeat, rate), "trial_id": p.trial_id,
                "execution": p.execution}

    decisions = scheduler._adaptive_sweep(job, plans, run, scheduler.Progress())
    assert {"torch/ddp", "torch/ddp/compiled"} <= set(seen)
    assert any(d.startswith("torch/ddp/compiled:") for d in decisions)
    assert any(d.startswith("torch/ddp:") for d in decisions)


def test_one_curve_is_one_unit():
    rows = [record("torch", "ddp", 1, 0, 1000), {**record("torch", "ddp", 2, 0, 1800), "samples_per_sec": None,
                                                "steps_per_sec": 25.0}]
    for r in rows:
        r["execution"] = "eager"
    (curve,) = scaling.curves(rows)
    assert curve.metric == "steps_per_sec"
    assert [p.throughput for p in curve.points] == [1000 / 64, 25.0]


# 5. Bands at any count ----------------------------------------------------------------------------------

def test_prediction_bands_have_width_off_any_grid():
    n = [1, 1, 2, 2, 4, 4]
    x = [amdahl(k, 1000, 0.05) * j for k, j in zip(n, (0.97, 1.03, 0.98, 1.02, 0.96, 1.04))]
    model = fit.fit_points(n, x)
    for workers in (8, 100, 128, 1000, 5000):
        low, high = model.band(workers)
        assert low < model.predict(workers) < high or low < high, workers
        assert high - low > 0, workers


# 6. Every report the same work --------------------------------------------------------------------------

def test_epochs_that_leave_nothing_to_measure_are_refused_with_the_numbers():
    with pytest.raises(SpecError) as caught:
        spec.parse({"name": "e", "arms": [{"framework": "torch", "strategy": "ddp"}], "workload": {"model": "mlp"},
                    "batch": {"per_worker": 32}, "training": {"epochs": 1, "warmup_steps": 5},
                    "sweep": {"workers": [1, 16]}})
    message = str(caught.value)
    assert "16 worker(s)" in message and "3 step(s)" in message and "warmup_steps 5" in message


def test_a_shard_smaller_than_its_batch_is_refused_with_the_numbers():
    with pytest.raises(SpecError) as caught:
        spec.parse({"name": "s", "arms": [{"framework": "torch", "strategy": "ddp"}], "workload": {"model": "mlp"},
                    "dataset": {"name": "synthetic", "num_samples": 64}, "batch": {"per_worker": 32},
                    "training": {"steps": 20}, "sweep": {"workers": [1, 4]}})
    assert "64 // 4 = 16 training samples, fewer than its batch of 32" in str(caught.value)


# 7. Scaling mode ----------------------------------------------------------------------------------------

def test_scaling_mode_is_in_the_plan_and_the_record_and_picks_the_models():
    strong = spec.parse({"name": "m", "arms": [{"framework": "torch", "strategy": "ddp"}], "workload": {"model": "mlp"},
                         "batch": {"global": 128, "scaling": "strong"}, "training": {"steps": 20},
                         "sweep": {"workers": [1, 2]}})
    assert {p.scaling for p in plan.build(strong)} == {"strong"}
    assert {p.scaling for p in plan.build(spec.load(ROOT / "jobs/digits-mlp.yaml"))} == {"weak"}
    assert {p.scaling for p in plan.build(spec.load(ROOT / "jobs/user-functions.yaml"))} == {"strong"}
    assert results.parse({**record("torch", "ddp", 1, 0, 1.0), "scaling": "strong"}).scaling == "strong"
    assert "pollux" not in [m.name for m in fit.models_for("strong")]
    n = [1, 2, 3, 4, 6, 8]
    x = [1000 * k / (1 + 0.3 * (k - 1)) ** 1.5 for k in n]
    assert fit.fit_points(n, x, scaling="strong").model != "pollux"


# 8. TPU and mirrored counts -----------------------------------------------------------------------------

def test_tpu_global_batch_counts_every_chip():
    plans = plan.build(spec.load(ROOT / "jobs/tpu-mlp.yaml"))
    one_slice = next(p for p in plans if p.workers == 4)
    assert one_slice.replicas == 16 and one_slice.global_batch == 128 * 16  # 4 hosts x 4 chips


def test_emitted_replicas_are_pods_slices_or_one_mirrored_pod():
    mirrored = recommend.pods_for("mirrored", 6, {"CPU": 2.0}, 2, None)
    assert (mirrored.replicas, mirrored.pods, mirrored.resources_per_pod) == (1, 1, {"CPU": 6.0})
    ddp = recommend.pods_for("ddp", 6, {"CPU": 1.0}, 2, None)
    assert (ddp.replicas, ddp.pods, ddp.resources_per_pod) == (6, 6, {"CPU": 1.0})
    tpu = recommend.pods_for("tpu", 8, {"CPU": 8.0, "TPU": 4.0}, 4, {"hosts": 4})
    assert (tpu.replicas, tpu.num_of_hosts, tpu.pods) == (2, 4, 8)


def _mirrored_dir(tmp_path):
    out = tmp_path / "m"
    for n in (1, 2, 4):
        for repeat, jitter in enumerate((0.99, 1.01)):
            r = record("tensorflow", "mirrored", n, repeat, amdahl(n, 1000, 0.02) * jitter, job="mirror")
            r.update(ray_workers=1, resources_per_worker={"CPU": float(n)}, execution="compiled")
            results.append(out, r)
    return out


def test_recommend_emit_and_render_for_a_mirrored_curve(tmp_path, capsys):
    out = _mirrored_dir(tmp_path)
    emit = tmp_path / "rec.yaml"
    assert main(["recommend", str(out), "--max-workers", "8", "--emit", str(emit)]) == 0
    (entry,) = yaml.safe_load(emit.read_text()).values()
    workers = entry["workers"]
    assert workers > 1
    assert entry["kubernetes"]["replicas"] == 1 and entry["scaling_config"]["num_workers"] == 1
    assert entry["scaling_config"]["resources_per_worker"] == {"CPU": float(workers)}
    job = tmp_path / "mirror.yaml"
    job.write_text("name: mirror\narms: [{framework: tensorflow, strategy: mirrored}]\nworkload: {model: mlp}\n"
                   "training: {steps: 30}\nsweep: {workers: [1, 2, 4]}\n")
    capsys.readouterr()
    assert main(["k8s", "render", str(job), "--from-report", str(out)]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    group = next(d for d in docs if d["kind"] == "RayCluster")["spec"]["workerGroupSpecs"][0]
    assert group["replicas"] == 1
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == f"{float(workers):g}"
    rendered = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["job.yaml"])
    assert rendered["sweep"]["workers"] == [workers] and rendered["arms"] == [{"framework": "tensorflow",
                                                                                "strategy": "mirrored"}]


# 9. Inputs silently ignored ----------------------------------------------------------------------------

def test_an_arm_entrypoint_beside_a_builtin_model_is_refused():
    with pytest.raises(SpecError, match="entrypoint beside workload.model 'mlp'"):
        spec.parse({"name": "x", "arms": [{"framework": "torch", "strategy": "ddp", "entrypoint": "a.b:c"}],
                    "workload": {"model": "mlp"}, "training": {"steps": 20}, "sweep": {"workers": [1]}})


def test_user_function_settings_beside_a_builtin_model_are_refused():
    with pytest.raises(SpecError, match="for a user's function"):
        spec.parse({"name": "x", "arms": [{"framework": "torch", "strategy": "ddp"}],
                    "workload": {"model": "mlp", "samples_metric": "n"}, "training": {"steps": 20},
                    "sweep": {"workers": [1]}})


# 10. The recommendation and the render agree -------------------------------------------------------------

def test_render_from_report_runs_the_recommended_count_even_below_the_sweep(tmp_path, capsys):
    out = tmp_path / "digits-mlp"
    for n, rate in ((1, 1000.0), (2, 1100.0)):  # a 2-core machine: 2 workers barely help
        for repeat in (0, 1):
            results.append(out, record("torch", "ddp", n, repeat, rate * (1 + 0.01 * repeat), job="digits-mlp"))
            results.append(out, record("tensorflow", "multi_worker_mirrored", n, repeat, rate / 2, job="digits-mlp"))
    assert main(["recommend", str(out)]) == 0
    best = recommend.from_report(str(out), None)
    assert best.workers == 1
    capsys.readouterr()
    assert main(["k8s", "render", "jobs/digits-mlp.yaml", "--from-report", str(out)]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    group = next(d for d in docs if d["kind"] == "RayCluster")["spec"]["workerGroupSpecs"][0]
    assert group["replicas"] == 1
    job = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["job.yaml"])
    assert job["sweep"]["workers"] == [1] and [a["framework"] for a in job["arms"]] == ["torch"]
    assert spec.parse(job).name == "digits-mlp"
    entry = next(d for d in docs if d["kind"] == "RayJob")["spec"]["entrypoint"]
    assert entry.startswith("orchestrator train ") and entry.endswith("--workers 1 --out /results/digits-mlp-train-torch-ddp-w1")


def test_render_from_report_of_another_job_names_the_missing_arm(tmp_path, capsys):
    out = _mirrored_dir(tmp_path)
    assert main(["recommend", str(out)]) == 0
    capsys.readouterr()
    assert main(["k8s", "render", "jobs/digits-mlp.yaml", "--from-report", str(out)]) == 2
    assert "has no arm 'tensorflow/mirrored'" in capsys.readouterr().err


# 11. Startup on one clock ---------------------------------------------------------------------------------

def test_startup_is_measured_on_the_drivers_clock_whatever_a_node_clock_says():
    launched = 1000.0
    skew = 3600.0  # worker 1's node clock is an hour ahead

    def worker(rank, registered, own_clock):
        # the worker started 1.5 s (its clock) before its registration left (importing ray.train, say)
        started = registered + own_clock - 1.5
        return {"rank": rank, "node_id": f"n{rank}", "hostname": f"h{rank}", "pid": rank, "started_wall": started,
                "sent_wall": started + 1.5, "registered_wall": registered, "finished_wall": started + 5,
                "records": [{"t": 1.0 + k, "wall": started + 1.0 + k, "received_wall": registered + 1.0 + k,
                             "metrics": {"step_times_s": [0.01] * 10, "samples": 320, "step": 10 * (k + 1),
                                         **({"first_step_wall": started + 0.5} if k == 0 else {})}}
                            for k in range(3)]}

    summary = measure.summarize([worker(0, 1002.0, 0.0), worker(1, 1003.0, skew)], 5, "samples", launched)
    # worker 1 started at 1003 - 1.5 on the driver's clock: 1.5 s after launch; it registered at 3.0
    assert summary["startup_s"] == pytest.approx(1.5)
    assert summary["time_to_first_step_s"] == pytest.approx(2.0)  # step 1 done 0.5 s after its start
    assert summary["time_to_first_report_s"] == pytest.approx(1.5)  # worker 0: started at 0.5, report 1.0 s later


# 12. The page never scrolls sideways --------------------------------------------------------------------------

def test_every_table_scrolls_inside_its_own_box(tmp_path):
    _mixed_units(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<table>") == page.count("<div class=scroll><table>") > 0
    assert ".scroll{overflow-x:auto" in page


# The shape: analysis apart from formatting ---------------------------------------------------------------------

def test_recommend_takes_its_answer_from_the_analysis_not_from_report_json(tmp_path):
    out = _mirrored_dir(tmp_path)
    assert main(["recommend", str(out)]) == 0
    (out / "report.json").write_text("{}")  # a stale or edited report does not change the answer
    chosen = recommend.from_report(str(out), None)
    data = analysis.analyze(results.load(out), report.read_settings(out))
    assert chosen.workers == data["recommendations"][0]["workers"]


def test_driver_settings_live_in_the_plan_and_never_leak_into_the_environment(monkeypatch):
    import os

    from orchestrator.running import launchers

    smoke = yaml.safe_load((ROOT / "jobs/smoke.yaml").read_text())
    (p, *_) = plan.build(spec.parse({**smoke, "launcher": "ray_train"}))
    assert p.controller_env[plan.START_TIMEOUT_ENV] == "20"
    monkeypatch.delenv(plan.START_TIMEOUT_ENV, raising=False)
    with launchers.controller_environment(p):
        assert os.environ[plan.START_TIMEOUT_ENV] == "20"
    assert plan.START_TIMEOUT_ENV not in os.environ
    actors = plan.build(spec.parse({**yaml.safe_load((ROOT / "jobs/smoke.yaml").read_text()), "launcher": "actors"}))
    assert all(q.controller_env == {} for q in actors)


def test_tf_config_is_one_pure_function():
    from orchestrator.running import launchers

    assert json.loads(launchers.tf_config(["a:1", "b:2"], 1)) == {
        "cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}


def test_old_plan_hashes_still_match_so_resumes_skip_done_trials():
    """Hashes computed by the version before the plan carried arm, scaling, replicas, controller_env,
    launcher_reason and worker_group: a results.jsonl written by it resumes without rerunning its trials. (That
    version's default launcher was ray_train: a job that names no launcher now runs on actors, a different
    measurement, and reruns.)"""
    def old_default(name, **training):
        data = yaml.safe_load((ROOT / "jobs" / name).read_text())
        return spec.parse({**data, "training": {**data["training"], **training}, "launcher": "ray_train"})

    smoke = plan.build(old_default("smoke.yaml"))
    digits = plan.build(old_default("digits-mlp.yaml", steps=150, report_every=50))  # the job as it was then
    assert (smoke[0].trial_id, scheduler.plan_hash(smoke[0])) == ("torch-ddp-mlp-w1-r0", "82b793d3a8b84363")
    assert (digits[-1].trial_id, scheduler.plan_hash(digits[-1])) == (
        "tensorflow-multi_worker_mirrored-mlp-w2-r1", "a2bccfb4192230c8")
