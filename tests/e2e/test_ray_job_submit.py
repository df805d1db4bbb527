"""`ray job submit` against a real Ray head (token auth on) with a second node on the same machine."""

import json
import subprocess
import uuid

import pytest

from tests.conftest import ROOT
from tests.ray_head import BIN, two_nodes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster():
    with two_nodes() as started:
        yield started


def submit(cluster, *entrypoint, timeout=600):
    submission = f"test-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard_url, "--submission-id", submission,
         "--working-dir", str(ROOT), "--", *entrypoint],
        env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )
    return submission, done


def job_cli(cluster, verb, submission):
    return subprocess.run([str(BIN / "ray"), "job", verb, "--address", cluster.dashboard_url, submission],
                          env=cluster.env, capture_output=True, text=True, timeout=60)


def test_sweep_submitted_as_a_ray_job_attaches_and_spreads_over_two_nodes(cluster, tmp_path):
    out = tmp_path / "smoke"
    submission, done = submit(cluster, "orchestrator", "sweep", "jobs/smoke.yaml", "--out", str(out))
    logs = done.stdout + done.stderr
    assert done.returncode == 0, logs
    assert "succeeded" in job_cli(cluster, "status", submission).stdout.lower()
    # it attached to this cluster instead of starting its own, and said where the results are
    assert f":{cluster.gcs_port} (" in logs and "2 node(s)" in logs, logs[-3000:]
    assert f"results and reports: {out}" in logs
    assert (cluster.temp_dir / "auth_token").read_text() not in logs

    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    assert all(r["environment"]["embedded_cluster"] is False for r in records)
    for record in records:
        # 1 CPU on each node: a 2-worker trial must place one worker on each node
        assert len(record["nodes"]) == record["workers"], record["per_worker"]
    for name in ("report.json", "report.csv", "report.md", "report.html"):
        assert (out / name).exists()


def test_bad_spec_fails_the_job_with_the_spec_error_in_its_logs(cluster, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "jobs/smoke.yaml").read_text().replace("sweep:", "sweeep:"))
    submission, done = submit(cluster, "python", "-m", "orchestrator", "sweep", str(bad), "--out", str(tmp_path / "o"),
                              timeout=180)
    assert done.returncode != 0
    assert "failed" in job_cli(cluster, "status", submission).stdout.lower()
    logs = job_cli(cluster, "logs", submission).stdout
    assert "sweeep: unknown field" in logs and "Traceback" not in logs
