"""PyTorch DistributedDataParallel on Ray Train's TorchTrainer: gloo on CPU, NCCL on GPU."""

from __future__ import annotations

from orchestrator.running.launchers import run_config, scaling_config


def describe(plan) -> dict:
    uses_gpu = plan.resources_per_worker.get("GPU", 0) > 0
    return {
        "trainer": "ray.train.torch.TorchTrainer",
        "scaling_config": scaling_config(plan),
        # timeout_s bounds every collective: a stalled all-reduce fails the trial instead of hanging it.
        "torch_config": {"backend": "nccl" if uses_gpu else "gloo", "timeout_s": plan.collective_timeout_s},
    }


def make_trainer(plan, train_loop_per_worker, train_loop_config: dict, storage_path: str):
    from ray.train import ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    described = describe(plan)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=train_loop_config,
        scaling_config=ScalingConfig(**described["scaling_config"]),
        torch_config=TorchConfig(**described["torch_config"]),
        run_config=run_config(plan, storage_path),
    )
