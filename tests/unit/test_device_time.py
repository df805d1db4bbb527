"""The accelerator-like workload (workload.model emulated, orchestrator/workloads/device_time.py): its spec,
its gradients and its device time, and DDP's reducer all-reducing its real buckets."""

import time

import pytest
import torch

from orchestrator.job import plan, spec
from orchestrator.errors import SpecError
from orchestrator.workloads import device_time

JOB = {"name": "emu", "arms": [{"framework": "torch", "strategy": "ddp"}],
       "workload": {"model": "emulated", "params": {"layers": 4, "layer_mib": 0.5, "forward_ms": 4, "backward_ms": 8}},
       "batch": {"per_worker": 16}, "training": {"steps": 10, "warmup_steps": 2}, "sweep": {"workers": [1, 2]}}


def test_an_emulated_job_plans_without_an_export():
    plans = plan.build(spec.parse(JOB))
    assert all(p.train_config["model"] == "emulated" and p.train_config["export"] is None for p in plans)
    assert device_time.gradient_bytes(JOB["workload"]["params"]) == 4 * (1 << 19)


@pytest.mark.parametrize("params, field", [
    ({"layers": 0}, "params.layers"), ({"layers": 2.5}, "params.layers"), ({"forward_ms": -1}, "params.forward_ms"),
    ({"backward_ms": float("nan")}, "params.backward_ms"), ({"jitter": 2}, "params.jitter"),
    ({"hidden": [4]}, "unknown params ['hidden']"),
])
def test_bad_device_time_params_name_the_field(params, field):
    job = {**JOB, "workload": {"model": "emulated", "params": params}}
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        spec.parse(job)


def test_tensorflow_is_refused_with_the_reason():
    job = {**JOB, "arms": [{"framework": "tensorflow", "strategy": "multi_worker_mirrored"}]}
    with pytest.raises(SpecError, match="runs under PyTorch"):
        spec.parse(job)


def test_device_time_gradients_are_real_tensors_and_the_time_is_slept():
    params = {"layers": 4, "layer_mib": 0.25, "forward_ms": 8.0, "backward_ms": 16.0, "optimizer_ms": 4.0,
              "at_batch": 32}
    model = device_time.DeviceTimeModel(params, per_worker_batch=16, classes=10, seed=0)  # half of at_batch
    optimizer = device_time.DeviceTimeOptimizer(model, model.parameters())
    x = torch.randn(16, 64)
    started = time.process_time(), time.perf_counter()
    loss = model(x).sum()
    loss.backward()
    optimizer.step()
    cpu, wall = time.process_time() - started[0], time.perf_counter() - started[1]
    assert wall >= 0.014  # (8 + 16 + 4) / 2 ms of device time
    assert cpu < wall  # the CPU idles through it
    for weight in model.weights:
        assert weight.grad.shape == weight.shape and weight.grad[0] == pytest.approx(16 * 10)
        assert weight.numel() * 4 == 1 << 18


def test_a_slower_device_and_jitter(monkeypatch):
    monkeypatch.setenv(device_time.SCALE_ENV, "2")
    slow = device_time.DeviceTimeModel({"forward_ms": 10.0, "layers": 2}, 32, 10, 0)
    assert slow.forward_s == pytest.approx(2 * 10e-3 / 2)
    jittery = device_time.DeviceTimeModel({"jitter": 0.2}, 32, 10, 0)
    draws = [jittery.draw() for _ in range(2000)]
    assert 0.18 < torch.tensor(draws).std().item() < 0.22 and min(draws) >= 0.1


def test_replay_writes_a_job_of_the_measured_gradient_and_compute(tmp_path, capsys):
    from orchestrator.measuring import results
    from orchestrator.cli import main
    from tests.unit.test_physics import trial

    for line in (trial(1, 20.0, local_ms=18.0, gradient=8 << 20), trial(2, 30.0, local_ms=18.0, gradient=8 << 20)):
        line["breakdown"]["backward_ms"] = 12.0
        results.append(tmp_path, line)
    out = tmp_path / "replay.yaml"
    assert main(["replay", str(tmp_path), "--workers", "1,4,16", "--out", str(out)]) == 0
    job = spec.load(out)
    p = job.workload.params
    assert job.workload.model == "emulated" and job.sweep.workers == [1, 4, 16]
    assert p["layers"] * p["layer_mib"] == pytest.approx(8.0) and p["backward_ms"] == pytest.approx(12.0)
    assert p["forward_ms"] == pytest.approx(6.0) and p["at_batch"] == 64
    assert main(["replay", str(tmp_path), "--curve", "tensorflow/mwm", "--out", str(out)]) == 2
    assert "no trial of curve 'tensorflow/mwm'" in capsys.readouterr().err


def test_horovod_is_refused_with_the_reason():
    job = {**JOB, "arms": [{"framework": "torch", "strategy": "horovod"}]}
    with pytest.raises(SpecError, match="runs under DDP"):
        spec.parse(job)
