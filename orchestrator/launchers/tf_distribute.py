"""tf.distribute on Ray Train's TensorflowTrainer.

multi_worker_mirrored: N Ray workers, each one replica; TensorflowTrainer writes TF_CONFIG for
                       MultiWorkerMirroredStrategy.
mirrored:              one Ray worker holding all N replicas' resources; MirroredStrategy over its GPUs
                       (or N logical CPU devices on a machine without GPUs).
tpu:                   one Ray worker per TPU host (ScalingConfig use_tpu, topology, accelerator_type);
                       TPUStrategy from TPUClusterResolver on each.
The strategy itself is built by the workload in the worker (orchestrator/workloads/tf_train.py).
"""

from __future__ import annotations

from orchestrator.launchers import scaling_config


def describe(plan) -> dict:
    return {
        "trainer": "ray.train.tensorflow.TensorflowTrainer",
        "scaling_config": scaling_config(plan),
        "tf_strategy": {
            "multi_worker_mirrored": "tf.distribute.MultiWorkerMirroredStrategy",
            "mirrored": "tf.distribute.MirroredStrategy",
            "tpu": "tf.distribute.TPUStrategy(TPUClusterResolver)",
        }[plan.strategy],
        "replicas_per_worker": plan.tpu["chips_per_host"] if plan.tpu else plan.workers // plan.ray_workers,
        **({"tpu": plan.tpu} if plan.tpu else {}),
    }


def make_trainer(plan, train_loop_per_worker, train_loop_config: dict, run_config):
    from ray.train import ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    return TensorflowTrainer(
        train_loop_per_worker,
        train_loop_config=train_loop_config,
        scaling_config=ScalingConfig(**describe(plan)["scaling_config"]),
        run_config=run_config,
    )
