"""A Ray Train backend that writes TF_CONFIG on every worker, as TensorflowTrainer's does, without importing
TensorFlow where nothing trains (the driver, each trial's controller); see tf_distribute.py."""

from __future__ import annotations

import os

from ray.train.backend import Backend, BackendConfig

from orchestrator.running.launchers import free_address, tf_config


class TFConfigBackend(BackendConfig):
    """Ray Train backend config: before training, every worker gets TF_CONFIG naming all workers."""

    @property
    def backend_cls(self):
        return _TFConfig


class _TFConfig(Backend):
    def on_start(self, worker_group, backend_config) -> None:
        import ray

        addresses = worker_group.execute(free_address)
        ray.get([worker_group.execute_single_async(index, _write_tf_config, addresses, index)
                 for index in range(len(worker_group))])


def _write_tf_config(addresses: list[str], index: int) -> None:
    os.environ["TF_CONFIG"] = tf_config(addresses, index)
