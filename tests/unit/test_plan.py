"""Plans as data: what each trial would run, and refusal of trials the cluster cannot hold."""

import pytest

from orchestrator.job import plan, spec
from orchestrator.running import launchers
from orchestrator.errors import ClusterTooSmall, UserError

JOB = {
    "name": "p",
    "arms": [{"framework": "torch", "strategy": "ddp"}, {"framework": "tensorflow", "strategy": "mirrored"}],
    "workload": {"model": "cnn"},
    "batch": {"global": 64, "scaling": "strong"},
    "training": {"epochs": 2, "warmup_steps": 1},
    "sweep": {"workers": [1, 2, 4], "repeats": 2},
    "resources": {"cpus_per_worker": 0.5, "threads_per_worker": 1},
}


@pytest.fixture
def plans():
    return plan.build(spec.parse(JOB))


def test_every_arm_count_and_repeat_once_repeats_outermost():
    plans = plan.build(spec.parse({**JOB, "launcher": "ray_train"}))
    assert len(plans) == 2 * 3 * 2
    assert [(p.repeat, p.workers, p.framework) for p in plans[:3]] == [(0, 1, "torch"), (0, 1, "tensorflow"), (0, 2, "torch")]
    assert len({p.trial_id for p in plans}) == len(plans)


def test_reused_workers_run_a_groups_repeats_back_to_back(plans):
    """launcher: actors (the default here): the repeats of one (arm, worker count) follow each other, since
    their processes hold the cluster while they live; arms still take turns at each worker count."""
    assert len(plans) == 2 * 3 * 2 and len({p.trial_id for p in plans}) == len(plans)
    assert [(p.workers, p.framework, p.repeat) for p in plans[:5]] == [
        (1, "torch", 0), (1, "torch", 1), (1, "tensorflow", 0), (1, "tensorflow", 1), (2, "torch", 0)]
    assert plans[0].worker_group == plans[1].worker_group == "torch/ddp-w1"
    fresh = plan.build(spec.parse({**JOB, "sweep": {**JOB["sweep"], "reuse_workers": False}}))
    assert all(p.worker_group is None for p in fresh) and [p.repeat for p in fresh[:6]] == [0] * 6
    one_repeat = plan.build(spec.parse({**JOB, "sweep": {**JOB["sweep"], "repeats": 1}}))
    assert all(p.worker_group is None for p in one_repeat)  # nothing to share


def test_the_launcher_notes_say_why_repeats_start_fresh_processes():
    """--dry-run and the report name, per arm, whether its repeats share worker processes, and why not."""
    from orchestrator.running.scheduler import launcher_notes

    arms = [{"framework": "torch", "strategy": "ddp"}, {"framework": "torch", "strategy": "horovod"}]
    plans = plan.build(spec.parse({**JOB, "arms": arms}))
    for note in launcher_notes(plans):  # Horovod's executor is kept between repeats as the actors are
        assert note.endswith("Repeats of each worker count run in the same worker processes.")
    assert {p.worker_group for p in plans if p.strategy == "horovod"} == {"torch/horovod-w1", "torch/horovod-w2",
                                                                           "torch/horovod-w4"}
    ddp, horovod = launcher_notes(plan.build(spec.parse({**JOB, "arms": arms, "launcher": "ray_train"})))
    assert "fresh worker processes: each Ray Train run starts its own worker group" in ddp
    assert "fresh worker processes: launcher: ray_train keeps no processes between trials" in horovod
    off = launcher_notes(plan.build(spec.parse({**JOB, "sweep": {**JOB["sweep"], "reuse_workers": False}})))
    assert all("sweep.reuse_workers is false" in n for n in off)
    one = launcher_notes(plan.build(spec.parse({**JOB, "sweep": {**JOB["sweep"], "repeats": 1}})))
    assert not any("processes" in n for n in one)
    # A user's Horovod function runs on the executor's actors, but each repeat in fresh ones: its process
    # may keep state from the call before (module globals, the names Horovod matches its collectives by).
    user = {"name": "u", "arms": [{"framework": "torch", "strategy": "horovod"}], "sweep": JOB["sweep"],
            "workload": {"entrypoint": "jobs.examples.torch_user:train_func"}}
    plans = plan.build(spec.parse(user))
    assert all(p.launcher == "actors" and p.worker_group is None for p in plans)
    (note,) = launcher_notes(plans)
    assert "fresh worker processes: a user's function may leave state in its process for the next call" in note


def test_strong_scaling_and_epoch_arithmetic(plans):
    at4 = next(p for p in plans if p.workers == 4 and p.framework == "torch")
    assert at4.per_worker_batch == 16 and at4.global_batch == 64
    # 1437 digits training samples / global batch 64 = 22.5 -> 23 steps an epoch, 2 epochs.
    assert at4.steps == 46
    assert at4.train_config["per_worker_batch"] == 16


def test_mirrored_is_one_ray_worker_holding_every_replica(plans):
    mirrored = next(p for p in plans if p.strategy == "mirrored" and p.workers == 4)
    assert mirrored.ray_workers == 1
    assert mirrored.resources_per_worker == {"CPU": 2.0}
    assert mirrored.train_config["replicas"] == 4
    described = launchers.get("mirrored").describe(mirrored)
    assert described["scaling_config"]["num_workers"] == 1 and described["replicas_per_worker"] == 4


def test_threads_pinned_alike_in_every_arm(plans):
    assert {p.env["OMP_NUM_THREADS"] for p in plans} == {"1"}
    assert {p.train_config["threads"] for p in plans} == {1}
    assert all(p.env["TF_USE_LEGACY_KERAS"] == "1" for p in plans)


def test_ddp_backend_follows_the_device():
    cpu = plan.build(spec.parse({**JOB, "sweep": {"workers": [2]}}))[0]
    assert launchers.get("ddp").describe(cpu)["torch_config"] == {"backend": "gloo", "timeout_s": 600}
    gpu_job = {**JOB, "sweep": {"workers": [2]}, "resources": {"cpus_per_worker": 1, "gpus_per_worker": 1}}
    gpu = plan.build(spec.parse(gpu_job))[0]
    described = launchers.get("ddp").describe(gpu)
    assert described["torch_config"]["backend"] == "nccl" and described["scaling_config"]["use_gpu"] is True


def test_unknown_strategy_lists_known_launchers():
    with pytest.raises(UserError, match="known: ddp, horovod, mirrored, multi_worker_mirrored, tpu"):
        launchers.get("parameter_server")


def test_cluster_too_small_names_asked_and_available(plans):
    with pytest.raises(ClusterTooSmall) as caught:
        plan.check_fits(plans, total={"CPU": 1.0}, nodes=[{"CPU": 1.0}])
    message = str(caught.value)
    assert "asks for 4 x {CPU: 0.5} = {CPU: 2}" in message
    assert "the cluster has {CPU: 1}" in message


def test_worker_larger_than_any_node_is_refused():
    big = plan.build(spec.parse({**JOB, "sweep": {"workers": [2]}, "resources": {"cpus_per_worker": 2}}))
    with pytest.raises(ClusterTooSmall, match="more than any single node"):
        plan.check_fits(big[:1], total={"CPU": 4.0}, nodes=[{"CPU": 1.5}, {"CPU": 1.5}, {"CPU": 1.0}])


def test_plans_that_fit(plans):
    plan.check_fits(plans, total={"CPU": 2.0}, nodes=[{"CPU": 2.0}])


def test_user_function_plan_passes_config_unchanged():
    job = spec.parse({
        "name": "u", "arms": [{"framework": "torch", "strategy": "ddp", "entrypoint": "jobs.examples.torch_user:train_func"}],
        "workload": {"entrypoint": "pkg.mod:fallback", "config": {"lr": 0.1, "epochs": 3}, "samples_metric": "num_samples"},
        "training": {"steps": 5, "warmup_steps": 1}, "sweep": {"workers": [1]},
    })
    (p,) = plan.build(job)
    assert p.entrypoint == "jobs.examples.torch_user:train_func"
    assert p.train_config == {"lr": 0.1, "epochs": 3}
    assert p.samples_metric == "num_samples" and p.per_worker_batch is None


@pytest.mark.parametrize(
    "accelerator, topology, workers, hosts, chips_per_host, slices, ray_type",
    [("tpu-v5e", "2x4", 2, 1, 8, 2, "TPU-V5LITEPOD"), ("tpu-v5e", "4x4", 8, 4, 4, 2, "TPU-V5LITEPOD"),
     ("tpu-v6e", "2x2", 1, 1, 4, 1, "TPU-V6E"), ("tpu-v6e", "8x8", 16, 16, 4, 1, "TPU-V6E")],
)
def test_tpu_plans_show_hosts_chips_and_workers(accelerator, topology, workers, hosts, chips_per_host, slices, ray_type):
    job = spec.parse({**JOB, "arms": [{"framework": "tensorflow", "strategy": "tpu",
                                       "tpu": {"accelerator": accelerator, "topology": topology}}],
                      "batch": {"per_worker": 8}, "sweep": {"workers": [workers]}})
    (p,) = plan.build(job)
    assert p.ray_workers == workers and p.resources_per_worker["TPU"] == chips_per_host
    assert (p.tpu["hosts"], p.tpu["chips_per_host"], p.tpu["slices"]) == (hosts, chips_per_host, slices)
    scaling = launchers.get("tpu").describe(p)["scaling_config"]
    assert scaling["use_tpu"] is True and scaling["topology"] == topology and scaling["accelerator_type"] == ray_type
    from ray.train import ScalingConfig  # Ray's own validation of the TPU request agrees

    ScalingConfig(**scaling)


def test_tpu_workers_must_fill_whole_slices():
    with pytest.raises(Exception, match=r"sweep.workers: 6 worker\(s\) is not a multiple of the 4 host"):
        spec.parse({**JOB, "arms": [{"framework": "tensorflow", "strategy": "tpu",
                                     "tpu": {"accelerator": "tpu-v6e", "topology": "4x4"}}], "sweep": {"workers": [4, 6]}})


def test_tpu_plan_without_tpus_is_refused_saying_what_it_asked_for():
    plans = plan.build(spec.load("jobs/tpu-mlp.yaml"))
    with pytest.raises(ClusterTooSmall) as caught:
        plan.check_fits(plans, total={"CPU": 2.0}, nodes=[{"CPU": 2.0}])
    message = str(caught.value)
    assert message.startswith("no TPU found in the cluster")
    assert "4 worker(s) = 1 tpu-v6e 4x4 slice(s) of 4 host(s) x 4 chips (16 chips a slice)" in message
