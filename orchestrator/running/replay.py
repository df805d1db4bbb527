"""Pure: a measured job as accelerator-like workers (workload.model emulated), to replay it at sizes this
machine cannot run -- its gradient, its buckets and its compute time, from a sweep's step breakdown.

    orchestrator replay DIR [--curve torch/ddp] [--workers 1,2,4,8,16] --out replay.yaml

From the smallest-count trial of the curve that carries a breakdown: the gradient's bytes split into layers of
equal size (one a DDP bucket where the recorded buckets are equal, else 1 MiB each, at most 4096: DDP then
cuts its own buckets of them, which may differ from the source's), the
compute of a local step split into the backward (timed apart where the framework did; else 2/3 of it) and the
rest (forward, optimiser and input, taken as the forward's), at the trial's per-worker batch; its steps'
spread as the jitter. Whatever the source's framework, the replay runs torch DDP (a TensorFlow or Horovod
source's all-reduce then overlaps its backward as DDP's does).
"""

from __future__ import annotations

import math
import statistics
from typing import Optional

from orchestrator.errors import UserError

MIB = 1 << 20
MAX_LAYERS = 4096


def replay_job(records: list, curve: Optional[str], workers: list[int], name: str) -> tuple[dict, dict]:
    """The job spec (as a dict) that replays ``curve``'s measured step on accelerator-like workers, and where
    it came from."""
    measured = [r for r in records if (r.get("breakdown") or {}).get("compute_ms") is not None
                and (r.get("breakdown") or {}).get("gradient_bytes")]
    if curve is not None:
        measured = [r for r in measured if r.arm == curve]
    if not measured:
        which = f"curve {curve!r}" if curve else "any curve"
        raise UserError(f"no trial of {which} carries a step breakdown with its gradient: sweep with "
                        "measure.breakdown: true (built-in workloads) first")
    arms = sorted({r.arm for r in measured})
    if curve is None and len(arms) > 1:
        raise UserError(f"the sweep has {len(arms)} curves with a breakdown ({', '.join(arms)}): pick one with --curve")
    smallest = min(r.workers for r in measured)
    rows = [r for r in measured if r.workers == smallest]
    b = [r["breakdown"] for r in rows]
    gradient = int(b[0]["gradient_bytes"])
    compute = statistics.fmean(x["compute_ms"] + (x.get("input_ms") or 0.0) for x in b)
    backward = statistics.fmean(x["backward_ms"] for x in b) if all(x.get("backward_ms") for x in b) else 2 / 3 * compute
    buckets = b[0].get("bucket_bytes") or []
    if buckets and len(set(buckets)) == 1 and len(buckets) <= MAX_LAYERS:
        layers = len(buckets)
    else:
        layers = min(MAX_LAYERS, max(1, math.ceil(gradient / MIB)))
    spread = statistics.fmean(x.get("local_step_sd_ms") or 0.0 for x in b) / compute if compute > 0 else 0.0
    batch = int(rows[0].get("per_worker_batch") or 32)
    return {
        "name": name,
        "arms": [{"framework": "torch", "strategy": "ddp"}],
        "workload": {"model": "emulated", "params": {
            "layers": layers, "layer_mib": round(gradient / layers / MIB, 6),
            "forward_ms": round(max(0.0, compute - backward), 3), "backward_ms": round(backward, 3),
            "optimizer_ms": 0.0, "at_batch": batch, "jitter": round(min(1.0, spread), 4)}},
        "dataset": {"name": "synthetic", "num_samples": max(1024, batch * 64)},
        "batch": {"per_worker": batch},
        "training": {"steps": 60, "warmup_steps": 15, "report_every": 30},
        "sweep": {"workers": workers},
        "resources": {"cpus_per_worker": 1, "threads_per_worker": 1},
        "measure": {"breakdown": True},
        "launcher": "actors",
    }, {"curve": rows[0].arm, "workers": smallest, "trials": len(rows)}
