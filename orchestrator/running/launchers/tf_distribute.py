"""tf.distribute on Ray Train (a DataParallelTrainer with TensorflowTrainer's TF_CONFIG backend).

multi_worker_mirrored: N Ray workers, each one replica; the backend writes TF_CONFIG for
                       MultiWorkerMirroredStrategy.
mirrored:              one Ray worker holding all N replicas' resources; MirroredStrategy over its GPUs
                       (or N logical CPU devices on a machine without GPUs).
tpu:                   one Ray worker per TPU host (ScalingConfig use_tpu, topology, accelerator_type);
                       TPUStrategy from TPUClusterResolver on each.
The strategy itself is built by the workload in the worker (orchestrator/workloads/tf_train.py).

The trainer is Ray Train's DataParallelTrainer with ``tf_config.TFConfigBackend``, which does what TensorflowTrainer's
backend does (write TF_CONFIG on every worker from their addresses) without importing ``ray.train.tensorflow``:
that package imports TensorFlow at once, which cost 5-10 s in the driver and again in every trial's controller
process, neither of which trains anything.
"""

from __future__ import annotations

from orchestrator.running.launchers import run_config, scaling_config


def describe(plan) -> dict:
    return {
        "trainer": "ray.train.v2 DataParallelTrainer, TF_CONFIG backend (as TensorflowTrainer's)",
        "scaling_config": scaling_config(plan),
        "tf_strategy": {
            "multi_worker_mirrored": "tf.distribute.MultiWorkerMirroredStrategy",
            "mirrored": "tf.distribute.MirroredStrategy",
            "tpu": "tf.distribute.TPUStrategy(TPUClusterResolver)",
        }[plan.strategy],
        "replicas_per_worker": plan.tpu["chips_per_host"] if plan.tpu else plan.workers // plan.ray_workers,
        **({"tpu": plan.tpu} if plan.tpu else {}),
    }


def make_trainer(plan, train_loop_per_worker, train_loop_config: dict, storage_path: str):
    from ray.train import ScalingConfig
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from orchestrator.running.launchers.tf_config import TFConfigBackend

    return DataParallelTrainer(
        train_loop_per_worker,
        train_loop_config=train_loop_config,
        backend_config=TFConfigBackend(),
        scaling_config=ScalingConfig(**describe(plan)["scaling_config"]),
        run_config=run_config(plan, storage_path),
    )
