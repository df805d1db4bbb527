"""`orchestrator recommend`, `share` and `k8s render --from-report` on a results directory."""

import json

import yaml

from orchestrator.measuring import results
from orchestrator.cli import main
from tests.unit.test_report import record


def amdahl(n, x1, s):
    return x1 * n / (1 + s * (n - 1))


def sweep_dir(tmp_path, name, curves):
    out = tmp_path / name
    for (framework, strategy), (x1, s) in curves.items():
        for n in (1, 2, 4, 8):
            for repeat, jitter in enumerate((0.99, 1.01)):
                results.append(out, record(framework, strategy, n, repeat, amdahl(n, x1, s) * jitter, job=name))
    return out


def test_recommend_writes_report_and_emits_scaling_configs(tmp_path, capsys):
    out = sweep_dir(tmp_path, "job", {("torch", "ddp"): (1000, 0.02), ("tensorflow", "multi_worker_mirrored"): (800, 0.1)})
    emit = tmp_path / "rec.yaml"
    assert main(["recommend", str(out), "--threshold", "0.8", "--max-workers", "32", "--emit", str(emit)]) == 0
    printed = capsys.readouterr().out
    assert "torch ddp:" in printed and "Best: torch ddp" in printed
    data = json.loads((out / "report.json").read_text())
    recs = {r["framework"]: r for r in data["recommendations"]}
    # Amdahl s = 0.02: efficiency 1 / (1 + 0.02 (N - 1)) >= 0.8 while N <= 13.5
    assert recs["torch"]["workers"] == 13
    # s = 0.1: N <= 3.5
    assert recs["tensorflow"]["workers"] == 3
    emitted = yaml.safe_load(emit.read_text())
    assert emitted["torch/ddp"]["scaling_config"]["num_workers"] == 13
    low, high = emitted["torch/ddp"]["elastic_scaling_config"]["num_workers"]
    assert low <= 13 <= high
    assert "How many workers is it worth?" in (out / "report.html").read_text()
    # `orchestrator report` renders the same recommendation again: the settings live beside the results
    before = (out / "report.json").read_bytes()
    assert main(["report", str(out)]) == 0
    assert (out / "report.json").read_bytes() == before


def test_k8s_render_from_report(tmp_path, capsys):
    out = sweep_dir(tmp_path, "job", {("torch", "ddp"): (1000, 0.02)})
    assert main(["recommend", str(out), "--max-workers", "32"]) == 0
    capsys.readouterr()
    assert main(["k8s", "render", "jobs/digits-mlp.yaml", "--from-report", str(out)]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    group = next(d for d in docs if d["kind"] == "RayCluster")["spec"]["workerGroupSpecs"][0]
    assert group["replicas"] == 13 and group["maxReplicas"] >= 13


def test_recommend_with_one_count_says_nothing_to_fit(tmp_path, capsys):
    results.append(tmp_path, record("torch", "ddp", 1, 0, 100.0))
    assert main(["recommend", str(tmp_path)]) == 2
    assert "nothing to fit" in capsys.readouterr().err


def test_share_gives_workers_where_they_scale(tmp_path, capsys):
    good = sweep_dir(tmp_path, "good", {("torch", "ddp"): (1000, 0.01)})
    poor = sweep_dir(tmp_path, "poor", {("torch", "ddp"): (1000, 0.9)})
    assert main(["share", str(good), str(poor), "--cpus", "8"]) == 0
    table = capsys.readouterr().out
    good_row = next(line for line in table.splitlines() if "good" in line)
    poor_row = next(line for line in table.splitlines() if "poor" in line)
    assert "│       7 │" in good_row and "│       1 │" in poor_row
