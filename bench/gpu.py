"""One NVIDIA GPU: ResNet-50 on synthetic images through the orchestrator and bare, PyTorch and TensorFlow.

    bash bench/gpu.sh            (sets up .venv-gpu with CUDA builds, then runs this)
    python bench/gpu.py [--repeats 3] [--steps 60] [--batch 128] [--image-size 224] [--frameworks torch,tensorflow]

Arms, interleaved per repeat: for each framework, the orchestrator (a one-worker sweep holding the GPU, the
training function given as a user entrypoint) and bare (the same function in a plain process). Step time is
what the function measures itself (GPU synchronised), warm-up steps left out in both arms alike. Writes
bench/results/gpu.{json,md} with the machine's GPU. Sized to finish in under 10 minutes on an H100.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ENTRY = {"torch": "bench.gpu_workloads:torch_resnet", "tensorflow": "bench.gpu_workloads:tf_resnet"}
STRATEGY = {"torch": "ddp", "tensorflow": "multi_worker_mirrored"}


def bare(framework: str, config: dict, warmup: int) -> dict:
    started = time.perf_counter()
    done = subprocess.run([PY, "-m", "bench.gpu_workloads", framework, json.dumps(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"bare {framework} failed:\n{done.stderr[-3000:]}")
    times = [t for line in done.stdout.splitlines() if line.startswith("BENCH ")
             for t in json.loads(line[6:])["step_times_s"]][warmup:]
    return {"step_s": statistics.median(times), "wall_s": wall}


def orchestrated(framework: str, config: dict, warmup: int, gpus: float, cpus: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        job = {
            "name": f"gpu-{framework}", "arms": [{"framework": framework, "strategy": STRATEGY[framework]}],
            "workload": {"entrypoint": ENTRY[framework], "config": config, "samples_metric": "samples"},
            "training": {"warmup_steps": warmup}, "sweep": {"workers": [1]},
            "resources": {"cpus_per_worker": cpus, "gpus_per_worker": gpus},
        }
        path = Path(tmp) / "job.yaml"
        path.write_text(json.dumps(job))  # JSON is YAML
        started = time.perf_counter()
        done = subprocess.run([PY, "-m", "orchestrator", "sweep", str(path), "--out", f"{tmp}/out"], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"orchestrated {framework} failed:\n{(done.stdout + done.stderr)[-3000:]}")
        (record,) = [json.loads(line) for line in (Path(tmp) / "out/results.jsonl").read_text().splitlines()]
    return {"step_s": record["per_worker"][0]["step_time_p50_s"], "wall_s": wall}


def gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--frameworks", default="torch,tensorflow")
    parser.add_argument("--gpus", type=float, default=1.0, help="GPUs per worker (0 to try the script on a CPU)")
    parser.add_argument("--cpus", type=float, default=4.0, help="CPUs per worker (the GPU's input and launch threads)")
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()
    config = {"batch": args.batch, "image_size": args.image_size, "steps": args.steps, "report_every": 10}
    frameworks = args.frameworks.split(",")
    runs: dict[str, list] = {f"{f}/{arm}": [] for f in frameworks for arm in ("orchestrator", "bare")}
    for repeat in range(args.repeats):
        for framework in frameworks:
            for arm in ("orchestrator", "bare") if repeat % 2 == 0 else ("bare", "orchestrator"):
                result = (orchestrated(framework, config, args.warmup, args.gpus, args.cpus) if arm == "orchestrator"
                          else bare(framework, config, args.warmup))
                runs[f"{framework}/{arm}"].append(result)
                print(f"repeat {repeat + 1}/{args.repeats} {framework} {arm}: step {result['step_s'] * 1e3:.2f} ms, "
                      f"wall {result['wall_s']:.1f} s", flush=True)
    summary = {}
    for framework in frameworks:
        ours, theirs = runs[f"{framework}/orchestrator"], runs[f"{framework}/bare"]
        step = statistics.median(r["step_s"] for r in ours) / statistics.median(r["step_s"] for r in theirs)
        wall = statistics.median(r["wall_s"] for r in ours) / statistics.median(r["wall_s"] for r in theirs)
        summary[framework] = {
            "step_ms_orchestrator": statistics.median(r["step_s"] for r in ours) * 1e3,
            "step_ms_bare": statistics.median(r["step_s"] for r in theirs) * 1e3,
            "step_ratio": step, "wall_ratio": wall,
            "images_per_s_orchestrator": args.batch / statistics.median(r["step_s"] for r in ours),
        }
    result = {"machine": {"gpu": gpu_name(), "python": platform.python_version(), "cpu": platform.processor()},
              "config": {**config, "repeats": args.repeats, "warmup": args.warmup}, "summary": summary, "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# ResNet-50, synthetic {args.image_size}px, batch {args.batch}, one GPU: {result['machine']['gpu']}", "",
             "| framework | step ms (orchestrator) | step ms (bare) | step ratio | wall ratio |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {f} | {s['step_ms_orchestrator']:.2f} | {s['step_ms_bare']:.2f} | {s['step_ratio']:.3f} | {s['wall_ratio']:.2f} |"
              for f, s in summary.items()]
    (out / "gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
