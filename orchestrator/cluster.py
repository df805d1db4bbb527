"""The Ray edge: attach to a cluster (or start the embedded one) and read what it can hold."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass


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


def _session_dir() -> str:
    try:
        from ray._private.worker import _global_node

        return _global_node.get_session_dir_path() if _global_node else ""
    except Exception:  # a private API; the log location is a convenience only
        return ""
