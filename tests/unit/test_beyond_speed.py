"""The comparison beyond speed, pure parts: execution in specs and plans, export trials, lines of code,
artifact placement, first-step timing and the report sections."""

import json

import pytest

from orchestrator import report
from orchestrator.job import plan, spec
from orchestrator.measuring import artifacts, loc, measure, results
from orchestrator.errors import SpecError
from orchestrator.report import tables

JOB = {
    "name": "b",
    "arms": [{"framework": "torch", "strategy": "ddp"}, {"framework": "torch", "strategy": "ddp", "execution": "compiled"},
             {"framework": "tensorflow", "strategy": "multi_worker_mirrored", "execution": "xla"}],
    "workload": {"model": "mlp"},
    "training": {"steps": 50},
    "sweep": {"workers": [1, 2], "repeats": 2},
}


def test_execution_defaults_and_keys():
    job = spec.parse(JOB)
    assert [a.run_as for a in job.arms] == ["eager", "compiled", "xla"]
    assert [a.key for a in job.arms] == ["torch/ddp", "torch/ddp/compiled", "tensorflow/multi_worker_mirrored/xla"]
    assert spec.parse({**JOB, "arms": [{"framework": "tensorflow", "strategy": "horovod"}]}).arms[0].run_as == "compiled"


@pytest.mark.parametrize("arms, field, words", [
    ([{"framework": "torch", "strategy": "ddp", "execution": "xla"}], "arms[0]", "not one of torch's: eager, compiled"),
    ([{"framework": "torch", "strategy": "ddp", "execution": "graph"}], "arms[0]", "not one of torch's"),
    ([{"framework": "torch", "strategy": "ddp"}, {"framework": "torch", "strategy": "ddp", "execution": "eager"}],
     "top level", "arms repeat"),
    ([{"framework": "tensorflow", "strategy": "tpu", "execution": "eager",
       "tpu": {"accelerator": "tpu-v6e", "topology": "2x2"}}], "arms[0]", "compiled graphs only"),
])
def test_bad_execution_is_refused_naming_the_field(arms, field, words):
    with pytest.raises(SpecError) as caught:
        spec.parse({**JOB, "arms": arms})
    assert field in str(caught.value) and words in str(caught.value)


def test_user_functions_take_no_execution():
    job = {**JOB, "workload": {"entrypoint": "jobs.examples.torch_user:train"}, "arms": [
        {"framework": "torch", "strategy": "ddp", "execution": "compiled"}]}
    with pytest.raises(SpecError, match="execution applies to built-in workloads"):
        spec.parse(job)


def test_one_export_per_arm_from_its_first_trial():
    plans = plan.build(spec.parse(JOB))
    exporting = [p for p in plans if p.export]
    assert [(p.arm, p.workers, p.repeat) for p in exporting] == [
        ("torch/ddp", 1, 0), ("torch/ddp/compiled", 1, 0), ("tensorflow/multi_worker_mirrored/xla", 1, 0)]
    assert all(p.train_config["export"] == {"latency_runs": 200} for p in exporting)
    assert all(p.train_config["export"] is None for p in plans if not p.export)
    assert {p.trial_id for p in exporting} == {"torch-ddp-mlp-w1-r0", "torch-ddp-compiled-mlp-w1-r0",
                                               "tensorflow-multi_worker_mirrored-xla-mlp-w1-r0"}
    assert [p.train_config["execution"] for p in exporting] == ["eager", "compiled", "xla"]
    assert not any(p.export for p in plan.build(spec.parse({**JOB, "deploy": {"export": False}})))


SOURCE = '''"""Module docstring."""

def step(model, batch):
    """Docstring, not code."""
    # a comment
    x = model(batch)  # trailing comment: still code

    y = (x +
         1)
    return y


def other():
    def step_inner():
        return 1
    return step_inner
'''


def test_lines_of_code_leave_out_comments_blank_lines_and_docstrings():
    assert loc.function_lines(SOURCE, ("step",)) == {"step": 5}  # def, x =, y = (two lines), return
    assert loc.function_lines(SOURCE, ("step_inner",)) == {"step_inner": 2}
    with pytest.raises(ValueError, match="missing"):
        loc.function_lines(SOURCE, ("missing",))


def test_lines_of_code_of_the_built_in_training_steps():
    torch, tf = loc.training_step("torch"), loc.training_step("tensorflow")
    assert set(torch["functions"]) == {"train_step"} and torch["lines"] >= 5
    assert set(tf["functions"]) == {"compute_gradients", "replica_step", "train_step"}
    assert tf["lines"] == sum(tf["functions"].values())


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "tensorboard/../../x"])
def test_artifacts_never_leave_the_output(bad, tmp_path):
    with pytest.raises(ValueError):
        artifacts.destination(bad, "t")
    saved = artifacts.save(tmp_path, "t", {bad: b"x", "export/model.onnx": b"onnx"}, [])
    assert saved["artifacts"]["files"] == ["export/t/model.onnx"] and saved["artifacts"]["skipped"]
    assert (tmp_path / "export" / "t" / "model.onnx").read_bytes() == b"onnx"


def test_deploy_summary_lands_in_the_record(tmp_path):
    summary = {"framework": "torch", "dataset": "digits", "test_samples": 3,
               "models": [{"format": "onnx", "file": "model.onnx"}]}
    saved = artifacts.save(tmp_path, "t", {"export/deploy.json": json.dumps(summary).encode(), "loose.txt": b"1"}, [])
    assert saved["deployment"] == {"dir": "export/t", "dataset": "digits", "test_samples": 3,
                                   "models": summary["models"]}
    assert (tmp_path / "files" / "t" / "loose.txt").exists()


def _worker(rank, first_times, step=20):
    return {"rank": rank, "node_id": "n", "hostname": "h", "pid": rank, "started_wall": 0.0, "finished_wall": 1.0,
            "records": [{"t": 1.0, "wall": 1.0, "metrics": {"step": step, "samples": 64 * len(first_times),
                                                           "step_times_s": first_times}}]}


def test_compile_time_is_the_first_step_beyond_a_steady_one():
    workers = [_worker(0, [3.0] + [0.01] * 19), _worker(1, [2.5] + [0.02] * 19)]
    summary = measure.summarize(workers, 5, "samples", 0.0)
    assert summary["first_step_s"] == 3.0
    assert summary["compile_s"] == pytest.approx(3.0 - 0.02)
    # a worker restored from a checkpoint never ran step 1: no first step to report
    assert measure.first_step_s(_worker(0, [0.01] * 10, step=30)["records"]) is None


def _record(framework, execution, workers, rate, compile_s):
    return {"trial_id": f"{framework}-{execution}-w{workers}", "job": "b", "framework": framework, "strategy": "ddp",
            "execution": execution, "workload": "mlp", "workers": workers, "repeat": 0, "ray_workers": workers,
            "status": "ok", "samples_per_sec": rate, "steps_per_sec": rate / 64, "step_time_mean_s": 64 / rate,
            "first_step_s": compile_s + 64 / rate, "compile_s": compile_s, "test_accuracy": 0.9,
            "step_lines": {"framework": framework, "source": "s.py", "functions": {"train_step": 7}, "lines": 7}}


def test_report_sections_side_by_side(tmp_path):
    exported = {"dir": "export/torch-eager-w1", "dataset": "digits", "test_samples": 360, "models": [
        {"format": "pytorch", "runtime": "torch", "file": None, "bytes": None, "accuracy": 0.9, "trained_accuracy": None,
         "accuracy_delta": None, "agreement": None, "latency_ms_p50": 0.1, "latency_ms_p90": 0.2, "export_s": None},
        {"format": "onnx", "runtime": "onnxruntime", "file": "model.onnx", "bytes": 2048, "accuracy": 0.9,
         "trained_accuracy": 0.9, "accuracy_delta": 0.0, "agreement": 1.0, "latency_ms_p50": 0.02,
         "latency_ms_p90": 0.03, "export_s": 2.0}]}
    board = {"logdir": "tensorboard/torch-eager-w1", "scalars": {"train/loss": 50}, "graph_nodes": 16}
    for r in [{**_record("torch", "eager", 1, 1000, 0.01), "deployment": exported, "tensorboard": board},
              _record("torch", "compiled", 1, 1500, 9.0), _record("torch", "eager", 2, 1800, 0.02),
              _record("torch", "compiled", 2, 2400, 9.5)]:
        results.append(tmp_path, r)
    report.render(tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    rows = {(r["execution"], r["workers"]): r for r in data["execution"]["rows"]}
    assert rows[("compiled", 2)]["vs_default"] == pytest.approx(2400 / 1800)
    assert rows[("compiled", 1)]["compile_s"] == 9.0 and data["execution"]["compared"] == ["torch"]
    assert [c["label"] for c in data["curves"]] == ["torch ddp", "torch ddp (compiled)"]
    assert data["deployment"][0]["models"][1]["bytes"] == 2048
    assert data["tensorboard"]["runs"][0]["logdir"] == "tensorboard/torch-eager-w1"
    assert data["lines_of_code"] == [{"framework": "torch", "source": "s.py", "functions": {"train_step": 7},
                                      "lines": 7, "workloads": ["mlp"]}]
    page = (tmp_path / "report.html").read_text()
    assert 'href="export/torch-eager-w1/model.onnx"' in page and 'href="tensorboard/torch-eager-w1/"' in page
    assert page.count("<svg") >= 5  # throughput, efficiency, execution, deployment, lines of code
    md = (tmp_path / "report.md").read_text()
    assert "| torch | ddp | 2 | compiled | 2,400 samples/s | 1.33x | 9.50 s |" in md
    said = "on the digits test split (360 samples) and on single samples"
    assert said in page and said in md
    csv_text = (tmp_path / "report.csv").read_text()
    assert csv_text.splitlines()[0].startswith("framework,strategy,execution,workload")


def test_exports_of_a_dataset_without_a_test_split_say_they_were_timed_only():
    """A synthetic dataset has no test split: the note says so instead of naming a split of 0 samples."""
    deployments = [{"dataset": "synthetic", "test_samples": 0}]
    said = tables.exports_evaluated_on(deployments)
    assert "synthetic" in said and "no test split" in said and "0 samples" not in said
    assert "(360 samples)" in tables.exports_evaluated_on([{"test_samples": 360}])  # a record from before


def test_time_to_first_step_waits_for_the_slowest_worker():
    workers = [_worker(0, [3.0] + [0.01] * 19), _worker(1, [2.5] + [0.02] * 19)]
    workers[0]["records"][0]["metrics"]["first_step_wall"] = 105.0
    workers[1]["records"][0]["metrics"]["first_step_wall"] = 107.5
    assert measure.summarize(workers, 5, "samples", 100.0)["time_to_first_step_s"] == 7.5
    del workers[1]["records"][0]["metrics"]["first_step_wall"]  # a worker that did not say: unknown
    assert measure.summarize(workers, 5, "samples", 100.0)["time_to_first_step_s"] is None


def test_step_log_keeps_every_step_and_writes_only_when_flushed():
    from orchestrator.workloads.reporting import StepLog

    written, opened, closed = [], [], []

    def open_writer():
        opened.append(True)
        return written.extend, lambda: closed.append(True)

    log = StepLog(open_writer, global_batch=64, flush_steps=4)
    log.add(2, [2.0, 1.5], [0.5, 0.25])
    assert not opened  # nothing written (or imported) while training runs
    log.add(4, [1.2, 1.0], [0.25, 0.125])  # four steps kept: written now
    assert len(written) == 12 and written[:3] == [("train/loss", 2.0, 1), ("train/step_time_ms", 500.0, 1),
                                                   ("train/samples_per_sec", 128.0, 1)]
    log.add(5, [0.9], [0.5])
    log.close()
    assert [s for tag, _, s in written if tag == "train/loss"] == [1, 2, 3, 4, 5]
    assert opened == [True] and closed == [True]
