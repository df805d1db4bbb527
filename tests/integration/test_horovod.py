"""Horovod through horovod.ray.RayExecutor, both frameworks, 2 workers, beside the Ray Train strategies in
one sweep: the same workload, so a framework's two strategies train the same model at the same worker
count (same initial weights, shards and global-batch mean loss), and one report holds all four. Then DDP and
MultiWorkerMirrored again on plain Ray actors (launcher: actors): the same model again."""

import json
import tempfile
from pathlib import Path

import pytest
import yaml

from orchestrator.job import spec
from orchestrator.measuring import results
from orchestrator.running import scheduler
from orchestrator.running.launchers import horovod

pytestmark = pytest.mark.ray


def test_horovod_is_installed_by_make_test():
    horovod.check_installed()  # `make test` builds it (scripts/build_horovod.sh); this names the fix if not


def test_four_strategies_train_the_same_model_and_share_a_report(ray_session, tmp_path):
    data = yaml.safe_load(open("jobs/digits-4-strategies.yaml"))
    data["sweep"]["workers"] = [2]
    data["training"].update(steps=60, warmup_steps=5, report_every=20)
    data["deploy"] = {"export": False}  # exports are tested in test_beyond_speed.py
    scheduler.sweep(spec.parse(data), tmp_path)
    records = {(r["framework"], r["strategy"]): r for r in results.read(tmp_path)}
    assert sorted(records) == [("tensorflow", "horovod"), ("tensorflow", "multi_worker_mirrored"),
                               ("torch", "ddp"), ("torch", "horovod")]
    for record in records.values():
        assert record["status"] == "ok", record.get("error")
        assert [w["rank"] for w in record["per_worker"]] == [0, 1]
        assert record["final_step"] == 60 and record["samples_per_sec"] > 0
    # Horovod averaged the gradients over both workers exactly as DDP / MultiWorkerMirrored did.
    for framework, other in (("torch", "ddp"), ("tensorflow", "multi_worker_mirrored")):
        ours, theirs = records[framework, "horovod"], records[framework, other]
        assert ours["final_loss"] == pytest.approx(theirs["final_loss"], rel=1e-3, abs=1e-4), framework
        assert ours["test_accuracy"] == pytest.approx(theirs["test_accuracy"], abs=1 / 360)
    report = json.loads((tmp_path / "report.json").read_text())
    curves = {(c["framework"], c["strategy"]) for c in report["curves"]}
    assert curves == set(records)
    assert "horovod" in (tmp_path / "report.html").read_text()

    # launcher: actors sets up torch.distributed / TF_CONFIG itself: it trains what Ray Train's workers did.
    data.update(launcher="actors", arms=[a for a in data["arms"] if a["strategy"] != "horovod"])
    scheduler.sweep(spec.parse(data), tmp_path / "actors")
    for record in results.read(tmp_path / "actors"):
        assert record["status"] == "ok", record.get("error")
        assert record["launcher"] == "actors"
        assert [w["rank"] for w in record["per_worker"]] == [0, 1]
        theirs = records[record["framework"], record["strategy"]]
        assert record["final_loss"] == pytest.approx(theirs["final_loss"], rel=1e-5, abs=1e-6), record["framework"]
        assert record["test_accuracy"] == theirs["test_accuracy"]


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_horovod_repeats_share_one_executor_and_each_trains_from_scratch(ray_session, tmp_path, framework):
    """Under launcher: actors (the default) the repeats of a Horovod arm run on one RayExecutor's actors: the
    second reaches step 1 without a new rendezvous, and trains the same model from the same start (the same
    loss to the last digit) as the first. The first repeat exports its model on rank 0 only, so the ranks'
    processes differ before the second (TensorFlow: Keras's layer counters); its collectives still meet. The
    processes leave none of AutoGraph's generated files behind in the temporary directory."""
    generated = set(Path(tempfile.gettempdir()).glob("__autograph_generated_file*"))
    data = {
        "name": "hvd-reuse", "arms": [{"framework": framework, "strategy": "horovod"}],
        "workload": {"model": "mlp", "params": {"hidden": [32]}}, "dataset": {"name": "digits"},
        "batch": {"per_worker": 32, "scaling": "weak"},
        "training": {"steps": 30, "warmup_steps": 5, "report_every": 10},
        "sweep": {"workers": [2], "repeats": 2}, "measure": {"breakdown": False},
        "reliability": {"collective_timeout_s": 30}, "resources": {"cpus_per_worker": 1},
    }
    scheduler.sweep(spec.parse(data), tmp_path)
    first, second = sorted(results.read(tmp_path), key=lambda r: r["repeat"])
    for record in (first, second):
        assert record["status"] == "ok", record.get("error")
        assert record["launcher"] == "actors" and record["final_step"] == 30
    assert first["deployment"]  # the export ran, on rank 0, before the second repeat
    assert second["worker_reuse"]["group"] == first["worker_reuse"]["group"]
    assert second["worker_reuse"]["pids"] == first["worker_reuse"]["pids"] and len(first["worker_reuse"]["pids"]) == 2
    assert (first["worker_reuse"]["use"], second["worker_reuse"]["use"]) == (1, 2)
    assert second["worker_reuse"]["shared_with"] == [first["trial_id"]]
    assert second["final_loss"] == pytest.approx(first["final_loss"], rel=1e-6)
    assert second["test_accuracy"] == first["test_accuracy"]
    assert second["time_to_first_step_s"] < first["time_to_first_step_s"] / 2
    assert set(Path(tempfile.gettempdir()).glob("__autograph_generated_file*")) <= generated
