"""Orchestrator overhead against bare launchers: steady-state step time at 2 workers, and wall time.

    .venv/bin/python bench/overhead.py [--repeats 5]

Arms, interleaved and repeated: for each repeat, in turn,
  torch  through the orchestrator (Ray Train TorchTrainer)  vs  bare `torchrun --nproc_per_node 2`
  tf     through the orchestrator (Ray Train TensorflowTrainer)  vs  two processes with TF_CONFIG set by hand
Every arm runs the same built-in workload function (orchestrator/workloads/*_train.py), the same model, data,
per-worker batch and steps, with one intra-op thread per worker (OMP_NUM_THREADS=1 everywhere). Step time is
what the workload itself measures, after the same warm-up. Writes bench/results/overhead.{json,md}.
Not a test: timings on a shared 2-core machine are noisy; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
STEPS, WARMUP, BATCH, REPORT = 400, 50, 64, 50
CONFIG = {
    "model": "mlp", "params": {"hidden": [512, 512]}, "dataset": "synthetic", "num_samples": 8192, "image_size": 8,
    "per_worker_batch": BATCH, "steps": STEPS, "report_every": REPORT, "checkpoint_every": 0, "learning_rate": 0.05,
    "momentum": 0.9, "seed": 0, "threads": 1, "replicas": 1, "collective_timeout_s": 600,
}
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
           "TF_NUM_INTEROP_THREADS": "1", "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}

BARE_TORCH = """
import json, os, sys
import torch.distributed as dist
dist.init_process_group("gloo")
from orchestrator.workloads import torch_train
torch_train.train_loop(json.loads(sys.argv[1]))
dist.destroy_process_group()
"""
BARE_TF = """
import json, sys
from orchestrator.workloads import tf_train
tf_train.train_loop(json.loads(sys.argv[1]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_time_from_prints(text: str) -> float:
    """Mean step time after warm-up from the workload's printed report lines (rank 0 prints first)."""
    rates = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    measured = [r for r in rates if r["step"] > WARMUP]
    seconds = sum(r["samples"] / r["samples_per_sec"] for r in measured)
    steps = sum(r["samples"] / BATCH for r in measured)
    return seconds / steps


def bare_torch() -> dict:
    started = time.perf_counter()
    env = {**os.environ, **THREADS, "PYTHONPATH": str(ROOT)}
    script = Path(tempfile.mkdtemp()) / "bare_torch.py"
    script.write_text(BARE_TORCH)
    done = subprocess.run([str(Path(PY).parent / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
                           "--local-ranks-filter", "0",
                           str(script), json.dumps(CONFIG)], env=env, capture_output=True, text=True, check=True)
    return {"wall_s": time.perf_counter() - started, "step_time_s": step_time_from_prints(done.stdout)}


def bare_tf() -> dict:
    started = time.perf_counter()
    ports = [free_port(), free_port()]
    workers = [f"127.0.0.1:{p}" for p in ports]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env = {**os.environ, **THREADS, "PYTHONPATH": str(ROOT), "TF_CONFIG": tf_config}
        procs.append(subprocess.Popen([PY, "-c", BARE_TF, json.dumps({**CONFIG, "strategy": "multi_worker_mirrored"})],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    outputs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("bare TF worker failed")
    return {"wall_s": time.perf_counter() - started, "step_time_s": step_time_from_prints(outputs[0])}


def orchestrated(framework: str) -> dict:
    strategy = "ddp" if framework == "torch" else "multi_worker_mirrored"
    job = {
        "name": f"overhead-{framework}", "arms": [{"framework": framework, "strategy": strategy}],
        "workload": {"model": "mlp", "params": CONFIG["params"]},
        "dataset": {"name": "synthetic", "num_samples": CONFIG["num_samples"]}, "batch": {"per_worker": BATCH},
        "training": {"steps": STEPS, "warmup_steps": WARMUP, "report_every": REPORT},
        "sweep": {"workers": [2]}, "resources": {"cpus_per_worker": 1, "threads_per_worker": 1},
    }
    work = Path(tempfile.mkdtemp())
    (work / "job.yaml").write_text(json.dumps(job))
    started = time.perf_counter()
    subprocess.run([PY, "-m", "orchestrator", "sweep", str(work / "job.yaml"), "--out", str(work / "out")],
                   cwd=ROOT, env={**os.environ, **THREADS}, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    (record,) = [json.loads(line) for line in (work / "out/results.jsonl").read_text().splitlines()]
    per_worker_steps = [w["step_time_mean_s"] for w in record["per_worker"] if w["rank"] == 0]
    return {"wall_s": wall, "step_time_s": per_worker_steps[0], "trial_wall_s": record["wall_time_s"],
            "startup_s": record["startup_s"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    arms = {"torch/orchestrator": lambda: orchestrated("torch"), "torch/torchrun": bare_torch,
            "tf/orchestrator": lambda: orchestrated("tensorflow"), "tf/TF_CONFIG": bare_tf}
    runs = {name: [] for name in arms}
    for repeat in range(args.repeats):
        for name, arm in arms.items():
            result = arm()
            runs[name].append(result)
            print(f"[{repeat + 1}/{args.repeats}] {name}: step {1000 * result['step_time_s']:.2f} ms, wall {result['wall_s']:.1f} s", flush=True)

    def median(name, key):
        return statistics.median(r[key] for r in runs[name])

    summary = {
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "workload": {"steps": STEPS, "warmup_steps": WARMUP, "per_worker_batch": BATCH, **CONFIG},
        "repeats": args.repeats,
        "runs": runs,
        "ratios": {
            "torch_step_time_orchestrator_over_torchrun": median("torch/orchestrator", "step_time_s") / median("torch/torchrun", "step_time_s"),
            "tf_step_time_orchestrator_over_tf_config": median("tf/orchestrator", "step_time_s") / median("tf/TF_CONFIG", "step_time_s"),
            "torch_wall_orchestrator_over_torchrun": median("torch/orchestrator", "wall_s") / median("torch/torchrun", "wall_s"),
            "tf_wall_orchestrator_over_tf_config": median("tf/orchestrator", "wall_s") / median("tf/TF_CONFIG", "wall_s"),
        },
    }
    out = ROOT / "bench/results"
    (out / "overhead.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["# Orchestrator overhead at 2 workers (medians of interleaved repeats)", "",
             f"`.venv/bin/python bench/overhead.py --repeats {args.repeats}` on {os.cpu_count()} CPUs, "
             f"MLP 512x512, batch {BATCH}/worker, {STEPS} steps ({WARMUP} warm-up), 1 thread per worker.", "",
             "| arm | step time | wall time (process start to exit) |", "|---|---:|---:|"]
    for name in arms:
        lines.append(f"| {name} | {1000 * median(name, 'step_time_s'):.2f} ms | {median(name, 'wall_s'):.1f} s |")
    lines += ["", *[f"- {k}: {v:.3f}" for k, v in summary["ratios"].items()]]
    (out / "overhead.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
