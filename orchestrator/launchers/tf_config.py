"""A Ray Train backend that writes TF_CONFIG on every worker, as TensorflowTrainer's does, without importing
TensorFlow where nothing trains (the driver, each trial's controller); see tf_distribute.py."""

from __future__ import annotations

import json
import os
import socket

from ray.train.backend import Backend, BackendConfig


class TFConfigBackend(BackendConfig):
    """Ray Train backend config: before training, every worker gets TF_CONFIG naming all workers."""

    @property
    def backend_cls(self):
        return _TFConfig


class _TFConfig(Backend):
    def on_start(self, worker_group, backend_config) -> None:
        import ray

        addresses = worker_group.execute(_address)
        ray.get([worker_group.execute_single_async(index, _write_tf_config, addresses, index)
                 for index in range(len(worker_group))])


def _address() -> str:
    import ray

    host = ray.util.get_node_ip_address()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:  # a free port for this worker's gRPC server
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    return f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"


def _write_tf_config(addresses: list[str], index: int) -> None:
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
