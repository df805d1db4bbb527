"""The Ray edge: attach to a cluster (or start the embedded one) and read what it can hold."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from orchestrator.errors import UserError


@dataclass(frozen=True)
class Cluster:
    address: str
    embedded: bool
    total: dict[str, float]
    nodes: list[dict[str, float]]
    log_dir: str


def connect(address: str | None = None, verbose: bool = False) -> Cluster:
    """Attach to ``address`` (or ``RAY_ADDRESS``); with neither, start an embedded local cluster.

    Inside a ``ray job submit`` job, Ray sets RAY_ADDRESS, so the sweep attaches to that cluster and never
    starts a second one. If Ray is already initialised in this process (tests share one session), reuse it.
    """
    import ray

    target = address or os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        kwargs = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.WARNING}
        if target:
            _check_reachable(target, "--address" if address else "RAY_ADDRESS")
            ray.init(address=target, **kwargs)
        else:
            ray.init(address="local", include_dashboard=False, **kwargs)
    context = ray.get_runtime_context()
    nodes = [
        {k: float(v) for k, v in node["Resources"].items() if not k.startswith("node:")}
        for node in ray.nodes()
        if node.get("Alive")
    ]
    total = {k: float(v) for k, v in ray.cluster_resources().items() if not k.startswith("node:")}
    return Cluster(
        address=context.gcs_address,
        embedded=not target,
        total=total,
        nodes=nodes,
        log_dir=_session_dir(),
    )


def _check_reachable(target: str, source: str, timeout_s: float = 5.0) -> None:
    """Refuse a HOST:PORT nobody listens on at once: ray.init retries a dead GCS address for ~12 minutes
    (20 attempts of ~35 s each) before it fails. ``auto`` and ``ray://`` addresses are left to Ray."""
    host, sep, port = target.rpartition(":")
    if not sep or "://" in target or not port.isdigit():
        return
    without = "drop --address" if source == "--address" else "unset RAY_ADDRESS"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise UserError(
            f"{source} {target}: no Ray cluster answers there ({err.strerror or err}); start one with "
            f"'ray start --head', pass its GCS address (HOST:6379), or {without} to start an embedded local cluster"
        ) from None


def _session_dir() -> str:
    try:
        from ray._private.worker import _global_node

        return _global_node.get_session_dir_path() if _global_node else ""
    except Exception:  # a private API; the log location is a convenience only
        return ""
