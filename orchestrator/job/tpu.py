"""Pure TPU slice arithmetic for GKE (Cloud TPU v5e and v6e).

A slice of topology AxB holds A*B chips. Single-host slices (1x1, 2x2, 2x4) put every chip on one VM;
larger slices are multi-host with 4 chips on each host:

    4x4 = 16 chips = 16 / 4 = 4 hosts        8x8 = 64 chips = 16 hosts

On GKE each host is one pod asking for ``google.com/tpu: <chips per host>``, scheduled by the node selectors
``cloud.google.com/gke-tpu-accelerator`` and ``cloud.google.com/gke-tpu-topology``. A KubeRay worker group
of a multi-host slice sets ``numOfHosts`` to the hosts per slice, and its ``replicas`` counts slices, so the
number of Ray worker pods is always a multiple of the hosts per slice.
"""

from __future__ import annotations

from dataclasses import dataclass

# accelerator name -> (GKE accelerator label, Ray accelerator type prefix, valid topologies)
ACCELERATORS = {
    "tpu-v5e": ("tpu-v5-lite-podslice", "TPU-V5LITEPOD", ("1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16")),
    "tpu-v6e": ("tpu-v6e-slice", "TPU-V6E", ("1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16")),
}
SINGLE_HOST_MAX_CHIPS = 8
MULTI_HOST_CHIPS_PER_HOST = 4


class TopologyError(ValueError):
    pass


@dataclass(frozen=True)
class Slice:
    accelerator: str
    topology: str
    chips: int
    hosts: int
    chips_per_host: int
    gke_accelerator: str
    ray_accelerator_type: str

    def to_dict(self) -> dict:
        return {
            "accelerator": self.accelerator, "topology": self.topology, "chips": self.chips, "hosts": self.hosts,
            "chips_per_host": self.chips_per_host, "gke_accelerator": self.gke_accelerator,
            "ray_accelerator_type": self.ray_accelerator_type,
        }


def tpu_slice(accelerator: str, topology: str) -> Slice:
    if accelerator not in ACCELERATORS:
        raise TopologyError(f"accelerator {accelerator!r} is not a TPU; known: {', '.join(ACCELERATORS)}")
    gke, ray_type, valid = ACCELERATORS[accelerator]
    if topology not in valid:
        raise TopologyError(f"topology {topology!r} is not a {accelerator} slice; valid: {', '.join(valid)}")
    a, b = (int(x) for x in topology.split("x"))
    chips = a * b
    per_host = chips if chips <= SINGLE_HOST_MAX_CHIPS else MULTI_HOST_CHIPS_PER_HOST
    return Slice(accelerator, topology, chips, chips // per_host, per_host, gke, f"{ray_type}-{chips}")


def slices_for(workers: int, tpu: Slice) -> int:
    """How many slices ``workers`` Ray worker pods (one per host) make; refuses a partial slice."""
    if workers < 1 or workers % tpu.hosts:
        raise TopologyError(
            f"{workers} worker(s) is not a multiple of the {tpu.hosts} host(s) in a {tpu.topology} "
            f"{tpu.accelerator} slice ({tpu.chips} chips / {tpu.chips_per_host} per host); "
            f"use {tpu.hosts}, {2 * tpu.hosts}, ... workers"
        )
    return workers // tpu.hosts
