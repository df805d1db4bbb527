"""Which launcher runs a trial, and what --dry-run shows of it (pure: nothing is started)."""

import copy

import pytest

from orchestrator.job import plan, spec
from orchestrator.running import launchers
from orchestrator.errors import SpecError
from tests.unit.test_spec import GOOD


def job(**changes):
    data = copy.deepcopy(GOOD)
    data.update(changes)
    return spec.parse(data)


def test_ray_train_runs_every_strategy_where_named():
    plans = plan.build(job(launcher="ray_train"))
    assert {p.launcher for p in plans} == {"ray_train"}
    assert {launchers.for_plan(p).__name__.rsplit(".", 1)[1] for p in plans} == {"torch_ddp", "tf_distribute"}
    assert {p.launcher_reason for p in plans} == {"named in the job"}


def test_default_launcher_is_actors_for_builtin_sweeps_and_ray_train_where_it_is_needed():
    plans = plan.build(job())
    assert {p.launcher for p in plans} == {"actors"}
    assert {launchers.for_plan(p).__name__ for p in plans} == {"orchestrator.running.launchers.ray_actors"}
    assert all(p.controller_env == {} for p in plans)
    restarts = plan.build(job(reliability={"max_failures": 2}))
    assert {p.launcher for p in restarts} == {"ray_train"}
    assert {p.launcher_reason for p in restarts} == {
        "reliability.max_failures is 2: restarts from a checkpoint need Ray Train"}
    user = plan.build(job(workload={"entrypoint": "jobs.examples.torch_user:train_func"}))
    assert {p.launcher for p in user} == {"ray_train"} and "ray.train.report" in user[0].launcher_reason
    tpu = plan.build(job(arms=[{"framework": "tensorflow", "strategy": "tpu",
                                "tpu": {"accelerator": "tpu-v6e", "topology": "2x2"}}], sweep={"workers": [1]}))
    assert tpu[0].launcher == "ray_train" and "TPU" in tpu[0].launcher_reason
    # orchestrator train keeps Ray Train's restarts whatever the sweep's launcher
    one = plan.training_plan(job(), "torch/ddp", 2)
    assert one.launcher == "ray_train" and one.worker_group is None and "restarts" in one.launcher_reason


def test_actors_run_ddp_and_tf_strategies_but_horovod_keeps_its_executor():
    arms = [{"framework": "torch", "strategy": "ddp"}, {"framework": "tensorflow", "strategy": "multi_worker_mirrored"},
            {"framework": "tensorflow", "strategy": "mirrored"}, {"framework": "torch", "strategy": "horovod"}]
    modules = {p.strategy: launchers.for_plan(p).__name__ for p in plan.build(job(arms=arms, launcher="actors"))}
    assert modules == {"ddp": "orchestrator.running.launchers.ray_actors",
                       "multi_worker_mirrored": "orchestrator.running.launchers.ray_actors",
                       "mirrored": "orchestrator.running.launchers.ray_actors",
                       "horovod": "orchestrator.running.launchers.horovod"}


def test_actor_plan_shows_the_gang_its_backend_and_no_restarts():
    plans = plan.build(job(launcher="actors", resources={"cpus_per_worker": 2}))
    two = {p.strategy: launchers.for_plan(p).describe(p) for p in plans if p.workers == 2}
    torch_, tf_ = two["ddp"], two["multi_worker_mirrored"]
    assert torch_["placement_group"] == {"bundles": [{"CPU": 2.0}] * 2, "strategy": "PACK", "timeout_s": 20}
    assert torch_["torch.distributed"] == {"backend": "gloo", "timeout_s": 600}
    assert "TF_CONFIG" in tf_ and "torch.distributed" not in tf_
    assert torch_["restarts"].startswith("none")
    gpu = plan.build(job(launcher="actors", resources={"gpus_per_worker": 1}))[0]
    assert launchers.for_plan(gpu).describe(gpu)["torch.distributed"]["backend"] == "nccl"


@pytest.mark.parametrize("changes, words", [
    ({"launcher": "actors", "reliability": {"max_failures": 2}},
     ["reliability.max_failures is 2", "never restarts", "launcher to ray_train"]),
    ({"launcher": "actors", "arms": [{"framework": "tensorflow", "strategy": "tpu",
                                      "tpu": {"accelerator": "tpu-v5e", "topology": "2x2"}}], "sweep": {"workers": [4]}},
     ["arm tensorflow/tpu", "launcher: ray_train"]),
    ({"launcher": "torchrun"}, ["launcher", "ray_train", "actors"]),
    ({"launcher": "actors", "workload": {"entrypoint": "jobs.examples.torch_user:train_func"},
      "arms": [{"framework": "torch", "strategy": "ddp"}], "training": {}},
     ["built-in workloads", "Ray Train's session", "use launcher: ray_train"]),
])
def test_actor_launcher_refuses_what_it_cannot_do(changes, words):
    with pytest.raises(SpecError) as err:
        job(**changes)
    for word in words:
        assert word in str(err.value), str(err.value)
