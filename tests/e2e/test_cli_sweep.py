"""The real CLI, end to end, in subprocesses that start their own embedded Ray cluster (the README's whole flow
on the default job is tests/e2e/test_readme_flow.py)."""

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
