"""Reports: rendered from results.jsonl alone, consistent with it, deterministic, and escaping user text."""

import csv
import json

import pytest

from orchestrator import report
from orchestrator.measuring import results
from orchestrator.errors import UserError


def record(framework, strategy, workers, repeat, rate, job="demo", workload="mlp", status="ok"):
    return {
        "trial_id": f"{framework}-{strategy}-{workload}-w{workers}-r{repeat}", "job": job, "framework": framework,
        "strategy": strategy, "workload": workload, "workers": workers, "repeat": repeat, "ray_workers": workers,
        "status": status, "error": None if status == "ok" else "RuntimeError: boom <b>",
        "samples_per_sec": rate, "steps_per_sec": rate / 64, "step_time_mean_s": 64 / rate if rate else None,
        "test_accuracy": 0.95, "per_worker_batch": 64, "global_batch": 64 * workers, "steps": 100,
        "warmup_steps": 10, "threads_per_worker": 1, "resources_per_worker": {"CPU": 1.0}, "nodes": ["n1"],
        "environment": {"ray": "2.60.0"},
    }


@pytest.fixture
def sweep_dir(tmp_path):
    for r in [record("torch", "ddp", 1, 0, 1000), record("torch", "ddp", 1, 1, 1100), record("torch", "ddp", 2, 0, 1800),
              record("tensorflow", "multi_worker_mirrored", 1, 0, 800), record("tensorflow", "multi_worker_mirrored", 2, 0, 1500),
              record("torch", "ddp", 2, 1, 0, status="failed")]:
        results.append(tmp_path, r)
    return tmp_path


def test_all_four_files_consistent_with_results(sweep_dir):
    written = report.render(sweep_dir)
    assert sorted(p.name for p in written) == sorted(report.FILES)
    data = json.loads((sweep_dir / "report.json").read_text())
    assert data["trials"] == {"ok": 5, "failed": 1, "superseded": 0, "stale": [], "torn_lines": []}
    torch = next(c for c in data["curves"] if c["framework"] == "torch")
    assert {"framework", "strategy", "workload", "points"} <= set(torch)
    p1, p2 = torch["points"]
    assert p1["samples_per_sec"] == pytest.approx(1050) and p1["repeats"] == 2
    assert p2["samples_per_sec"] == pytest.approx(1800) and p2["efficiency"] == pytest.approx(1800 / 2100)
    for key in ("workers", "samples_per_sec_std", "speedup", "efficiency"):
        assert key in p2
    rows = list(csv.DictReader((sweep_dir / "report.csv").open()))
    assert len(rows) == 4 and float(rows[-1]["efficiency"]) == pytest.approx(1800 / 2100, rel=1e-5)
    md = (sweep_dir / "report.md").read_text()
    assert "| torch | ddp | – | mlp | 2 |" in md and "Failed trials" in md


def test_html_is_self_contained_with_plots_and_table(sweep_dir):
    report.render(sweep_dir)
    page = (sweep_dir / "report.html").read_text()
    assert page.count("<svg") == 2 and "<table>" in page
    assert "ideal (linear)" in page and "torch ddp" in page and "tensorflow multi_worker_mirrored" in page
    assert "src=\"http" not in page and "<script" not in page and "<link" not in page


def test_rerender_is_byte_for_byte(sweep_dir):
    report.render(sweep_dir)
    first = {name: (sweep_dir / name).read_bytes() for name in report.FILES}
    report.render(sweep_dir)
    assert first == {name: (sweep_dir / name).read_bytes() for name in report.FILES}


def test_user_strings_are_escaped(tmp_path):
    results.append(tmp_path, record("torch", "ddp", 1, 0, 100, job="<script>alert(1)</script>", workload="<img src=x>"))
    results.append(tmp_path, record("torch", "ddp", 2, 0, 0, status="failed", workload="<img src=x>"))
    report.render(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "<img src=x>" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;" in page


def test_empty_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no trial results"):
        report.render(tmp_path)


def test_atomic_append_keeps_earlier_lines(tmp_path):
    results.append(tmp_path, {**record("torch", "ddp", 1, 0, 10.0), "trial_id": "a"})
    results.append(tmp_path, {**record("torch", "ddp", 1, 1, 0, status="failed"), "trial_id": "b"})
    assert [r["trial_id"] for r in results.read(tmp_path)] == ["a", "b"]
    assert list(results.completed(results.read(tmp_path))) == ["a"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_recovered_trials_are_reported(tmp_path):
    survivor = record("torch", "ddp", 2, 0, 1000)
    survivor.update(failures=1, failure_events=[{"recovery_s": 12.5, "last_reported_step": 75, "resumed_after_step": 50}])
    results.append(tmp_path, record("torch", "ddp", 1, 0, 600))
    results.append(tmp_path, survivor)
    report.render(tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["recovered_trials"][0]["failures"] == 1
    assert "resumed from the checkpoint at step 50 12.5 s later" in (tmp_path / "report.html").read_text()
    assert "lost a worker after step 75" in (tmp_path / "report.md").read_text()


def test_the_report_says_which_repeats_shared_worker_processes_and_why_the_others_did_not(tmp_path):
    """Each arm's line names its launcher; repeats in one worker group are counted as one set of processes;
    an arm whose repeats each started fresh processes says why (sweep.reuse_workers off, a Ray Train run)."""
    rows = []
    for repeat in range(2):
        shared = record("torch", "ddp", 1, repeat, 1000)
        shared.update(launcher="actors", launcher_reason="built-in",
                      worker_reuse={"group": "g1", "pids": [1], "use": repeat + 1, "shared_with": []})
        hvd = record("torch", "horovod", 1, repeat, 900)
        hvd.update(launcher="actors", launcher_reason="Horovod")  # sweep.reuse_workers false: fresh each time
        train = record("tensorflow", "multi_worker_mirrored", 1, repeat, 800)
        train.update(launcher="ray_train", launcher_reason="named in the job")
        user = record("tensorflow", "horovod", 1, repeat, 700)
        user.update(launcher="actors", launcher_reason="Horovod", entrypoint="my_pkg.train:train_func")
        old = record("tensorflow", "mirrored", 1, repeat, 600)
        old.update(launcher="actors", schema=2)  # written before worker reuse: no worker_reuse field
        rows += [shared, hvd, train, user, old]
    for r in rows:
        results.append(tmp_path, r)
    report.render(tmp_path)
    text = (tmp_path / "report.md").read_text()
    ddp = next(line for line in text.splitlines() if line.startswith("- torch ddp: launcher actors"))
    assert "2 trials in 1 set(s) at 1 worker(s)" in ddp and "fresh" not in ddp
    hvd = next(line for line in text.splitlines() if line.startswith("- torch horovod: launcher actors"))
    assert "each repeat in fresh worker processes: sweep.reuse_workers is false" in hvd
    tf = next(line for line in text.splitlines() if "multi_worker_mirrored: launcher ray_train" in line)
    assert "each repeat in fresh worker processes: each Ray Train run starts its own worker group" in tf
    user = next(line for line in text.splitlines() if line.startswith("- tensorflow horovod: launcher actors"))
    assert "each repeat in fresh worker processes: a user's function may leave state in its process" in user
    old = next(line for line in text.splitlines() if line.startswith("- tensorflow mirrored: launcher actors"))
    assert "each repeat in fresh worker processes: its records predate worker reuse (results.jsonl schema below 3)" in old


@pytest.mark.parametrize("values, labels", [
    ([8.0, 12.0, 21.0, 350.0], ["10", "20", "50", "100", "200"]),  # under a decade or two: 1-2-5 steps
    ([0.5, 30_000.0], ["1", "10", "100", "1000", "10000"]),  # beyond three decades: one label each
])
def test_log_axes_are_labelled_in_plain_numbers_without_minor_labels(values, labels):
    """The latency and cost plots' log axes: matplotlib's own formatter labels a narrow range's minor ticks
    on top of each other."""
    import matplotlib.pyplot as plt

    from orchestrator.report import plots

    figure, axes = plt.subplots()
    axes.barh(range(len(values)), values)
    plots._log_x(axes, values)
    figure.canvas.draw()
    low, high = axes.get_xlim()
    shown = [t.get_text() for t in axes.xaxis.get_majorticklabels() if low <= t.get_position()[0] <= high]
    assert shown == labels and not any(t.get_text() for t in axes.xaxis.get_minorticklabels())
    plt.close(figure)


def test_a_fit_worse_than_the_mean_says_its_recommendation_is_not_borne_out():
    from orchestrator.report.tables import recommendation_lines

    rec = {"label": "torch ddp", "workers": 4, "predicted_efficiency": 0.81, "baseline_workers": 1,
           "predicted_throughput": 900.0, "unit": "samples/s", "band": [800.0, 1000.0], "knee": 3, "peak": 6}
    fitted = {"model": "amdahl", "r2": -4.4, "loo_error": None, "measured_workers": [1, 2], "fit_below_mean": True}
    data = {"recommend_settings": {"threshold": 0.8}, "recommendations": [rec], "fits": [fitted]}
    (line,) = recommendation_lines(data)
    assert "fit R² -4.400" in line and "worse than their mean does (its RMS error over 1.1× the mean's)" in line
    assert "measure more worker counts (sweep.workers) or more repeats" in line
    data["fits"] = [{**fitted, "r2": 0.93, "fit_below_mean": False}]
    assert "worse than their mean" not in recommendation_lines(data)[0]


def test_the_verdict_ranks_only_curves_whose_model_fits_better_than_the_mean(tmp_path):
    from orchestrator.modelling import analysis, recommend, scaling
    from orchestrator.report.tables import recommendation_lines

    arms = (("torch", "ddp", 1000), ("tensorflow", "multi_worker_mirrored", 800), ("torch", "horovod", 600))
    for framework, strategy, rate in arms:
        for n in (1, 2, 3):
            results.append(tmp_path, record(framework, strategy, n, 0, rate * n * (0.9 if n > 1 else 1)))
    found = results.load(tmp_path)
    data = analysis.analyze(found)
    curves = scaling.curves(found.ok)
    assert data["verdict"]["best"] == "torch ddp" and "left_out" not in data["verdict"]

    def flagged(*labels):
        return [{**r, "fit_below_mean": r["label"] in labels, "r2": -4.4 if r["label"] in labels else r["r2"]}
                for r in data["recommendations"]]

    # The best by predicted throughput fits worse than the mean: it is named, not ranked.
    one = analysis.verdict(curves, flagged("torch ddp"))
    assert one["best"] == "tensorflow multi_worker_mirrored" and one["versus"] == "torch horovod"
    assert one["left_out"] == ["torch ddp (R² -4.40)"]
    (line,) = [x for x in recommendation_lines({**data, "verdict": one}) if x.startswith("Best:")]
    assert line.endswith("Not ranked, its model fitting its measurements worse than their mean does: "
                         "torch ddp (R² -4.40).")
    # Fewer than two left to rank: no verdict, and the reason names them.
    none = analysis.verdict(curves, flagged("torch ddp", "torch horovod"))
    assert none["basis"] is None and none["reason"].startswith(
        "the models of torch ddp (R² -4.40) and torch horovod (R² -4.40) fit their measurements worse")
    assert f"No curve is ranked best: {none['reason']}." in recommendation_lines({**data, "verdict": none})
    # `k8s render --from-report` without --curve then takes the most throughput among the fits borne out.
    chosen = recommend.best_recommendation({**data, "verdict": none, "recommendations": flagged("torch ddp", "torch horovod")})
    assert chosen["label"] == "tensorflow multi_worker_mirrored"
    assert recommend.best_recommendation(data)["label"] == "torch ddp"
