"""The real CLI, end to end, in subprocesses that start their own embedded Ray cluster."""

import csv
import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def run(*argv, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "orchestrator", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_sweep_writes_reports_consistent_with_results(tmp_path):
    out = tmp_path / "smoke"
    done = run("sweep", "jobs/smoke.yaml", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "embedded local Ray cluster" in done.stdout and str(out.resolve()) in done.stdout
    for name in ("results.jsonl", "report.json", "report.csv", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0, name

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["framework"], r["workers"]) for r in records} == {("torch", 1), ("torch", 2), ("tensorflow", 1), ("tensorflow", 2)}
    assert all(r["status"] == "ok" for r in records)
    data = json.loads((out / "report.json").read_text())
    rows = list(csv.DictReader((out / "report.csv").open()))
    for record in records:
        (curve,) = [c for c in data["curves"] if c["framework"] == record["framework"]]
        (point,) = [p for p in curve["points"] if p["workers"] == record["workers"]]
        assert point["samples_per_sec"] == pytest.approx(record["samples_per_sec"])
        (row,) = [r for r in rows if r["framework"] == record["framework"] and int(r["workers"]) == record["workers"]]
        assert float(row["throughput"]) == pytest.approx(record["samples_per_sec"], rel=1e-5)

    before = {name: (out / name).read_bytes() for name in ("report.json", "report.csv", "report.md", "report.html")}
    (out / "report.html").unlink()
    again = run("report", str(out), timeout=120)
    assert again.returncode == 0, again.stderr
    assert before == {name: (out / name).read_bytes() for name in before}


def test_worker_count_beyond_the_cluster_exits_2_within_seconds(tmp_path):
    job = tmp_path / "big.yaml"
    job.write_text((ROOT / "jobs/smoke.yaml").read_text().replace("workers: [1, 2]", "workers: [1, 16]"))
    started = time.monotonic()
    done = run("sweep", str(job), "--out", str(tmp_path / "out"), timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert "asks for 16 x {CPU: 1} = {CPU: 16}; the cluster has {CPU: 2}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "results.jsonl").exists()
    assert elapsed < 60, elapsed


def test_tpu_job_without_tpus_fails_fast_and_clearly(tmp_path):
    started = time.monotonic()
    done = run("sweep", "jobs/tpu-mlp.yaml", "--out", str(tmp_path / "tpu"), timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no TPU found in the cluster" in done.stderr and "tpu-v6e 4x4" in done.stderr
    assert not (tmp_path / "tpu" / "results.jsonl").exists()
    assert elapsed < 30, elapsed  # 15 s on an idle machine; the bound leaves room for a busy CI box
