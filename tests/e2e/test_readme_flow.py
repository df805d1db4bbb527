"""The README's command sequences, in the order it gives them, on the default job (what `make demo` runs), through
the real CLI in subprocesses: sweep, report, recommend (with --emit), k8s render --from-report and validate, share,
and a rerun that resumes. The reports must agree with results.jsonl, and the render with the recommendation."""

import csv
import json
import os
import subprocess
import sys

import pytest

from orchestrator.measuring import results
from orchestrator.modelling import recommend
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
JOB = "jobs/digits-mlp.yaml"
REPORTS = ("report.json", "report.csv", "report.md", "report.html")


def run(*argv, timeout=900):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "orchestrator", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`make demo`: the default job on an embedded local Ray cluster."""
    out = tmp_path_factory.mktemp("readme") / "digits-mlp"
    done = run("sweep", JOB, "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "embedded local Ray cluster" in done.stdout and str(out.resolve()) in done.stdout
    return out


def test_sweep_reports_agree_with_results_and_rerender_byte_for_byte(demo):
    lines = [json.loads(line) for line in (demo / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and all(r["status"] == "ok" and r["schema"] == results.SCHEMA_VERSION for r in lines)
    # The default launcher for a built-in sweep: actors, each point's two repeats in one set of processes.
    assert {r["launcher"] for r in lines} == {"actors"}
    groups = {}
    for r in lines:
        groups.setdefault((r["arm"], r["workers"]), set()).add(r["worker_reuse"]["group"])
    assert all(len(g) == 1 for g in groups.values()) and len(groups) == 4, groups
    assert "launcher actors: a built-in workload with no restarts asked for" in (demo / "report.md").read_text()
    assert {(r["arm"], r["scaling"], r["metric"]) for r in lines} == {
        ("torch/ddp", "weak", "samples_per_sec"), ("tensorflow/multi_worker_mirrored", "weak", "samples_per_sec")}
    data = json.loads((demo / "report.json").read_text())
    rows = list(csv.DictReader((demo / "report.csv").open()))
    for curve in data["curves"]:
        for point in curve["points"]:
            measured = [r["samples_per_sec"] for r in lines if r["arm"] == curve["name"] and r["workers"] == point["workers"]]
            assert point["throughput"] == pytest.approx(sum(measured) / len(measured)) and point["repeats"] == 2
            (row,) = [r for r in rows if r["framework"] == curve["framework"] and int(r["workers"]) == point["workers"]]
            assert float(row["throughput"]) == pytest.approx(point["throughput"], rel=1e-5)
    for record in lines:  # durations from launch on the driver's clock
        assert 0 < record["startup_s"] <= record["time_to_first_step_s"] <= record["wall_time_s"]
    before = {name: (demo / name).read_bytes() for name in REPORTS}
    (demo / "report.html").unlink()
    again = run("report", str(demo), timeout=120)
    assert again.returncode == 0, again.stderr
    assert before == {name: (demo / name).read_bytes() for name in REPORTS}


def test_dry_run_shows_the_plan_and_starts_nothing(demo):
    done = run("sweep", JOB, "--dry-run", timeout=120)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert len(plan["trials"]) == 8 and {t["arm"] for t in plan["trials"]} == {"torch/ddp", "tensorflow/multi_worker_mirrored"}
    # The default job runs on plain actors (no Ray Train controller to configure), each point's repeats kept together.
    assert all(t["launcher"]["name"] == "actors" and t["controller_env"] == {} for t in plan["trials"])
    assert all(t["launcher"]["placement_group"]["timeout_s"] == 20 for t in plan["trials"])
    assert [t["repeat"] for t in plan["trials"]] == [0, 1] * 4


def test_recommend_then_render_from_report_then_validate(demo, tmp_path):
    done = run("recommend", str(demo), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    emit = tmp_path / "rec.yaml"
    done = run("recommend", str(demo), "--threshold", "0.8", "--max-workers", "64", "--emit", str(emit), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    emitted = yaml.safe_load(emit.read_text())
    report = json.loads((demo / "report.json").read_text())
    best = recommend.best_recommendation(report)

    for extra in ([], ["--curve", "torch/ddp"], ["--curve", "tensorflow/multi_worker_mirrored"]):
        out = tmp_path / f"render{len(extra)}{extra[-1].replace('/', '-') if extra else ''}.yaml"
        done = run("k8s", "render", JOB, "--from-report", str(demo), *extra, "-o", str(out), timeout=120)
        assert done.returncode == 0, done.stderr
        docs = list(yaml.safe_load_all(out.read_text()))
        chosen = next(r for r in report["recommendations"] if r["name"] == extra[1]) if extra else best
        group = next(d for d in docs if d["kind"] == "RayCluster")["spec"]["workerGroupSpecs"][0]
        # ddp and MultiWorkerMirrored: one pod a worker, at the count recommend printed and emitted
        assert group["replicas"] == chosen["workers"] == emitted[chosen["name"]]["kubernetes"]["replicas"]
        job = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["job.yaml"])
        assert job["sweep"]["workers"] == [chosen["workers"]]
        entry = next(d for d in docs if d["kind"] == "RayJob")["spec"]["entrypoint"]
        assert entry.startswith("orchestrator train ") and f"--arm {chosen['name']} --workers {chosen['workers']}" in entry
        checked = run("k8s", "validate", str(out), timeout=120)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_train_at_the_recommended_size(demo, tmp_path):
    assert run("recommend", str(demo), timeout=300).returncode == 0
    report = json.loads((demo / "report.json").read_text())
    best = recommend.best_recommendation(report)
    out = tmp_path / "trained"
    done = run("train", JOB, "--from-report", str(demo), "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((out / "training.json").read_text())
    assert record["status"] == "ok" and record["arm"] == best["name"] and record["workers"] == best["workers"]
    assert record["test_accuracy"] > 0.8 and "trained " in done.stdout
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))


def test_render_at_a_scale_and_validate(tmp_path):
    out = tmp_path / "sweep.yaml"
    assert run("k8s", "render", JOB, "--workers", "8", "-o", str(out), timeout=120).returncode == 0
    checked = run("k8s", "validate", str(out), timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_share_two_sweeps(demo):
    done = run("share", str(demo), str(demo), "--cpus", "64", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "digits-mlp" in done.stdout and "total" in done.stdout


def test_rerun_resumes_without_running_anything(demo):
    before = (demo / "results.jsonl").read_bytes()
    done = run("sweep", JOB, "--out", str(demo))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped 8 trial(s)" in done.stdout
    assert (demo / "results.jsonl").read_bytes() == before
