"""An accelerator-like model for PyTorch: compute as device time, gradients as real tensors.

``workload: {model: emulated, params: {...}}`` trains this instead of the MLP or CNN. Each of its ``layers`` is
one real float32 parameter of ``layer_mib`` MiB; its forward and backward each last a fixed time during which
the CPU is idle (the process sleeps, as a host thread waits on a GPU kernel), and its backward hands back a real
gradient of the parameter's shape. So DDP's reducer fills and all-reduces its real gradient buckets, over the
trial's real process group and links, while the backward of the layers before still "runs": the overlap a GPU
job gets, with nothing on the CPU but the collective and the framework's own work. Many such workers fit on two
cores; the links, not the cores, then set the communication time.

Durations (params): ``forward_ms``, ``backward_ms`` and ``optimizer_ms`` for one step of ``at_batch`` samples
per worker, spread evenly over the layers and scaled in proportion to the per-worker batch (a device's time for
a batch, above its fixed costs); ``jitter``: the relative standard deviation of one step's durations on one
rank (each step and rank draws its own factor, a straggler of that step); the node's environment variable
``ORCHESTRATOR_COMPUTE_SCALE`` multiplies every duration on that node (a slower device: the emulated cluster's
``--straggler``). The optimizer's step sleeps too and leaves the weights as they are: the loss does not fall,
and the report says that compute was emulated.

TensorFlow is not emulated: MultiWorkerMirroredStrategy all-reduces the gradients after the whole backward
pass, inside the step's graph (no bucket overlaps a backward), and an op that sleeps needs a py_function, which
the strategy's graph runs on the host while holding its executor: the spec refuses ``framework: tensorflow``
with ``model: emulated``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

DEFAULTS = {"layers": 8, "layer_mib": 1.0, "forward_ms": 10.0, "backward_ms": 20.0, "optimizer_ms": 2.0,
            "at_batch": 32, "jitter": 0.0}
SCALE_ENV = "ORCHESTRATOR_COMPUTE_SCALE"


def settings(params: dict) -> dict:
    return {**DEFAULTS, **params}


def compute_scale() -> float:
    """This node's device slowdown (1: as specified)."""
    try:
        value = float(os.environ.get(SCALE_ENV, "1") or 1)
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


def gradient_bytes(params: dict) -> int:
    s = settings(params)
    return int(s["layers"]) * _elements(s["layer_mib"]) * 4


def _elements(mib: float) -> int:
    return max(1, int(round(mib * 2**20 / 4)))


class _Layer(torch.autograd.Function):
    """y = x + w[0]: the forward waits ``forward_s``, the backward ``backward_s`` and returns dL/dw as a tensor
    of w's shape (its first element the true gradient, the rest zero)."""

    @staticmethod
    def forward(ctx, x, weight, forward_s: float, backward_s: float):
        ctx.backward_s, ctx.weight_shape = backward_s, weight.shape
        time.sleep(forward_s)
        return x + weight[0]

    @staticmethod
    def backward(ctx, grad):
        time.sleep(ctx.backward_s)
        grad_weight = grad.new_zeros(ctx.weight_shape)
        grad_weight[0] = grad.sum()
        return grad, grad_weight, None, None


class DeviceTimeModel(nn.Module):
    """``layers`` parameters of ``layer_mib`` MiB; logits are the first 10 input features plus the layers'
    first weights (so every parameter is in the graph and gets a gradient)."""

    def __init__(self, params: dict, per_worker_batch: int, classes: int, seed: int):
        super().__init__()
        s = settings(params)
        self.classes = classes
        self.weights = nn.ParameterList(nn.Parameter(torch.zeros(_elements(s["layer_mib"]))) for _ in range(int(s["layers"])))
        share = max(per_worker_batch, 1) / float(s["at_batch"]) * compute_scale()
        layers = len(self.weights)
        self.forward_s = 1e-3 * s["forward_ms"] * share / layers
        self.backward_s = 1e-3 * s["backward_ms"] * share / layers
        self.optimizer_s = 1e-3 * s["optimizer_ms"] * share
        self.jitter = float(s["jitter"])
        self._rng = np.random.default_rng(seed)

    def draw(self) -> float:
        """One step's factor on this rank (1 without jitter; never below 0.1)."""
        return max(0.1, 1.0 + self.jitter * float(self._rng.standard_normal())) if self.jitter else 1.0

    def forward(self, x):
        factor = self.draw() if self.training else 1.0
        self.factor = factor
        h = x.flatten(1)[:, : self.classes].float()
        for weight in self.weights:
            h = _Layer.apply(h, weight, self.forward_s * factor, self.backward_s * factor)
        return h


class DeviceTimeOptimizer(torch.optim.Optimizer):
    """The optimizer's step as device time: it waits ``optimizer_s`` (times the step's factor) and leaves the
    weights unchanged."""

    def __init__(self, model: DeviceTimeModel, params):
        super().__init__(params, {})
        self.model = model

    @torch.no_grad()
    def step(self, closure=None):
        time.sleep(self.model.optimizer_s * getattr(self.model, "factor", 1.0))
        return None
