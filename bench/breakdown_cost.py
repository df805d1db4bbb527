"""What the step breakdown and the collective microbenchmark cost: the default job's trials with
``measure.breakdown`` on and off, side by side, interleaved (on, off, off, on, ...), each in its own sweep on one
embedded cluster per sweep. Goal: at most 10% more trial wall time with the breakdown on.

    .venv/bin/python bench/breakdown_cost.py [--pairs 2] [--job jobs/digits-mlp.yaml] [--out bench/results]

Writes bench/results/breakdown-cost.json and .md. Not a test: it reports numbers, it asserts nothing.
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.measuring import results  # noqa: E402

BIN = Path(sys.executable).parent


def sweep(job: dict, label: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"breakdown-{label}-"))
    (work / "job.yaml").write_text(yaml.safe_dump(job))
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "orchestrator"), "sweep", str(work / "job.yaml"), "--out", str(work / "out")],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{label} sweep failed: {done.stderr[-2000:]}")
    trials = results.load(work / "out").records
    return {"sweep_wall_s": wall, "trial_wall_s": sum(r["wall_time_s"] for r in trials),
            "trials": len(trials), "throughput": {r.trial_id: r.throughput for r in trials}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--job", default="jobs/digits-mlp.yaml")
    parser.add_argument("--out", default=str(ROOT / "bench/results"))
    args = parser.parse_args()
    base = yaml.safe_load((ROOT / args.job).read_text())
    runs = {"on": [], "off": []}
    order = []
    for pair in range(args.pairs):
        for label in (("on", "off") if pair % 2 == 0 else ("off", "on")):
            job = {**base, "measure": {"breakdown": label == "on"}}
            print(f"pair {pair + 1}/{args.pairs}: breakdown {label} ...", flush=True)
            runs[label].append(sweep(job, label))
            order.append(label)
    ratios = [on["trial_wall_s"] / off["trial_wall_s"] for on, off in zip(runs["on"], runs["off"])]
    sweep_ratios = [on["sweep_wall_s"] / off["sweep_wall_s"] for on, off in zip(runs["on"], runs["off"])]
    summary = {
        "job": args.job, "pairs": args.pairs, "order": order,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "trial_wall_ratio_on_over_off": ratios, "trial_wall_ratio_median": statistics.median(ratios),
        "sweep_wall_ratio_on_over_off": sweep_ratios, "sweep_wall_ratio_median": statistics.median(sweep_ratios),
        "goal": "trial wall time with the breakdown on <= 1.10x off", "runs": runs,
    }
    out = Path(args.out)
    (out / "breakdown-cost.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# What the step breakdown costs", "",
        f"`bench/breakdown_cost.py --pairs {args.pairs}` on `{args.job}`, {summary['machine']['cpus']} CPUs, "
        "sweeps interleaved (on, off, off, on, ...).", "",
        "| pair | trial wall on | trial wall off | on / off | sweep wall on / off |", "|---:|---:|---:|---:|---:|",
    ]
    for i, (on, off) in enumerate(zip(runs["on"], runs["off"]), 1):
        lines.append(f"| {i} | {on['trial_wall_s']:.1f} s | {off['trial_wall_s']:.1f} s | {ratios[i - 1]:.3f} "
                     f"| {sweep_ratios[i - 1]:.3f} |")
    lines += ["", f"Median trial wall time ratio {summary['trial_wall_ratio_median']:.3f} "
              f"(goal ≤ 1.10); sweep wall time ratio {summary['sweep_wall_ratio_median']:.3f}.", ""]
    (out / "breakdown-cost.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
