"""The CLI's handling of bad input (no cluster is started) and of --dry-run."""

import json
import subprocess
import sys
import time

import pytest

from orchestrator.cli import main


def write(tmp_path, text, name="job.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = """
name: tiny
arms: [{framework: torch, strategy: ddp}]
workload: {model: mlp}
training: {steps: 10, warmup_steps: 2}
sweep: {workers: [1, 2]}
"""


@pytest.mark.parametrize(
    "text, words",
    [
        ("name: x\narms: [\n", "malformed YAML"),
        (GOOD.replace("framework: torch", "framework: mxnet"), "arms[0].framework"),
        (GOOD + "colour: blue\n", "colour: unknown field"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_bad_spec_exits_2_with_one_line(tmp_path, capsys, text, words):
    assert main(["sweep", write(tmp_path, text), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path, capsys):
    assert main(["sweep", write(tmp_path, GOOD), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [t["workers"] for t in plan["trials"]] == [1, 2]
    # A built-in workload without restarts runs on plain actors, and the plan says so and why.
    launcher = plan["trials"][1]["launcher"]
    assert launcher["name"] == "actors" and "max_failures" in launcher["why"]
    assert len(launcher["placement_group"]["bundles"]) == 2
    assert plan["launchers"] == [f"torch/ddp: launcher actors: {launcher['why']}."]
    assert not (tmp_path / "out").exists()


def test_dry_run_shows_ray_train_where_restarts_are_asked_and_repeats_back_to_back(tmp_path, capsys):
    restarts = GOOD.replace("sweep: {workers: [1, 2]}", "sweep: {workers: [1, 2], repeats: 2}\nreliability: {max_failures: 1}")
    assert main(["sweep", write(tmp_path, restarts), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {t["launcher"]["name"] for t in plan["trials"]} == {"ray_train"}
    assert plan["trials"][1]["launcher"]["scaling_config"]["num_workers"] == 2
    assert "reliability.max_failures is 1" in plan["trials"][0]["launcher"]["why"]
    assert [(t["workers"], t["repeat"]) for t in plan["trials"]] == [(1, 0), (2, 0), (1, 1), (2, 1)]
    assert all(t["worker_group"] is None for t in plan["trials"])
    reused = GOOD.replace("sweep: {workers: [1, 2]}", "sweep: {workers: [1, 2], repeats: 2}")
    assert main(["sweep", write(tmp_path, reused), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [(t["workers"], t["repeat"]) for t in plan["trials"]] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert [t["worker_group"] for t in plan["trials"]] == ["torch/ddp-w1"] * 2 + ["torch/ddp-w2"] * 2
    assert "kept for every repeat" in plan["trials"][0]["launcher"]["worker_processes"]


def test_out_with_traversal_is_refused(tmp_path, capsys):
    assert main(["sweep", write(tmp_path, GOOD), "--out", "a/../../b", "--dry-run"]) == 2
    assert "--out" in capsys.readouterr().err


def test_report_on_missing_dir(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_unknown_command_and_flag_exit_2():
    for argv in (["frobnicate"], ["sweep", "x.yaml", "--workers", "3"]):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "orchestrator", *argv], capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert time.monotonic() - started < 30
