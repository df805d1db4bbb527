"""Horovod arms with their executor kept across repeats against a fresh executor per repeat (issue #22).

    .venv/bin/python bench/horovod_reuse.py [--pairs 3]

Each pair runs the same sweep twice through the CLI, whole process, embedded Ray cluster: torch and
TensorFlow through Horovod (the default job's MLP, data, steps and warm-up: 150 and 20 when
bench/results/horovod-reuse.md was measured), 1 and 2 workers, 3 repeats, once with `sweep.reuse_workers`
true (the default: one RayExecutor's actors for the repeats of a worker count) and once false; the order
alternates between pairs. The step breakdown and the exports are off: this compares the trials themselves.
Measured:

  wall time         CLI start to exit, and its ratio (reused / fresh) within each pair;
  time to step 1    of the repeats that ran in kept processes, and of those that started their own;
  agreement         each (arm, worker count)'s mean throughput over its repeats, reused against fresh, in the
                    same pair; against it, how far the fresh sweeps' own means move between pairs.

Writes bench/results/horovod-reuse.{json,md}. Not a test: timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import overhead  # noqa: E402


def job(reuse: bool) -> dict:
    base = yaml.safe_load((ROOT / "jobs/digits-mlp.yaml").read_text())
    return {**base, "name": "horovod-reuse",
            "arms": [{"framework": "torch", "strategy": "horovod"}, {"framework": "tensorflow", "strategy": "horovod"}],
            "sweep": {"workers": [1, 2], "repeats": 3, "reuse_workers": reuse},
            "measure": {"breakdown": False}, "deploy": {"export": False}}


def sweep(reuse: bool) -> dict:
    work = Path(tempfile.mkdtemp())
    path = work / "job.yaml"
    path.write_text(yaml.safe_dump(job(reuse)))
    started = time.perf_counter()
    subprocess.run([str(overhead.BIN / "orchestrator"), "sweep", str(path), "--out", str(work / "out")], cwd=ROOT,
                   capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in (work / "out" / "results.jsonl").read_text().splitlines()]
    ok = [r for r in records if r["status"] == "ok"]
    means: dict[str, list[float]] = {}
    for r in ok:
        means.setdefault(f"{r['arm']}@{r['workers']}", []).append(r["samples_per_sec"])
    by_repeat: dict[str, dict[int, dict]] = {}
    for r in ok:
        by_repeat.setdefault(f"{r['arm']}@{r['workers']}", {})[r["repeat"]] = {
            "samples_per_sec": r["samples_per_sec"], "use": (r.get("worker_reuse") or {}).get("use", 1)}
    return {
        "reuse": reuse, "wall_s": wall, "by_repeat": by_repeat, "trials": len(records), "failed": len(records) - len(ok),
        "throughput": {k: statistics.mean(v) for k, v in means.items()},
        "first_step_reused_s": [r["time_to_first_step_s"] for r in ok if (r.get("worker_reuse") or {}).get("use", 1) > 1],
        "first_step_fresh_s": [r["time_to_first_step_s"] for r in ok if (r.get("worker_reuse") or {}).get("use", 1) == 1],
    }


def summarize(pairs: list[dict]) -> dict:
    ratios = [p["kept"]["throughput"][k] / p["fresh"]["throughput"][k] for p in pairs for k in p["fresh"]["throughput"]]
    points = sorted(pairs[0]["fresh"]["throughput"])
    between = [min(p["fresh"]["throughput"][k] for p in pairs) / max(p["fresh"]["throughput"][k] for p in pairs)
               for k in points] if len(pairs) > 1 else []
    within = [statistics.mean(x["samples_per_sec"] for x in reps.values() if x["use"] > 1)
              / next(x["samples_per_sec"] for x in reps.values() if x["use"] == 1)
              for p in pairs for reps in p["kept"]["by_repeat"].values()
              if any(x["use"] > 1 for x in reps.values()) and any(x["use"] == 1 for x in reps.values())]
    fresh_within = [statistics.mean(reps[k]["samples_per_sec"] for k in sorted(reps)[1:]) / reps[min(reps)]["samples_per_sec"]
                    for p in pairs for reps in p["fresh"]["by_repeat"].values() if len(reps) > 1]
    return {
        "reused_over_first_repeat": sorted(within),
        "fresh_later_over_first_repeat": sorted(fresh_within),
        "wall_ratio": [p["kept"]["wall_s"] / p["fresh"]["wall_s"] for p in pairs],
        "throughput_kept_over_fresh": {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios)},
        "fresh_between_pairs_min_over_max": {k: b for k, b in zip(points, between)},
        "first_step_reused_s": sorted(s for p in pairs for s in p["kept"]["first_step_reused_s"]),
        "first_step_fresh_s": sorted(s for p in pairs for s in p["kept"]["first_step_fresh_s"]
                                     + p["fresh"]["first_step_fresh_s"]),
    }


def markdown(summary: dict, pairs: list[dict], machine: dict) -> str:
    s = summary
    lines = ["# Horovod: the executor kept across repeats against a fresh one per repeat", "",
             f"{time.strftime('%Y-%m-%d')}, {machine.get('cpus')} CPUs, Horovod {machine.get('horovod')}, "
             f"`bench/horovod_reuse.py --pairs {len(pairs)}`: torch and TensorFlow through Horovod, the default job's "
             "MLP, 1 and 2 workers, 3 repeats, `sweep.reuse_workers` true against false, interleaved pairs, whole "
             "process, the step breakdown and exports off.", "",
             "| pair | kept | fresh | ratio |", "|---:|---:|---:|---:|"]
    for i, (p, r) in enumerate(zip(pairs, s["wall_ratio"]), 1):
        lines.append(f"| {i} | {p['kept']['wall_s']:.1f} s | {p['fresh']['wall_s']:.1f} s | {r:.2f} |")
    t = s["throughput_kept_over_fresh"]
    lines += ["", f"- Throughput, kept over fresh, per (arm, worker count) and pair: {t['min']:.2f}–{t['max']:.2f}, "
              f"median {t['median']:.2f}.",
              "- Within each kept sweep, the reused repeats' mean over the first repeat of the same point (the one "
              "that started the processes): " + ", ".join(f"{v:.2f}" for v in s["reused_over_first_repeat"])
              + (f" (median {statistics.median(s['reused_over_first_repeat']):.2f})" if s["reused_over_first_repeat"] else "")
              + "; the same ratio in the fresh sweeps (later repeats over the first, no processes shared): "
              + ", ".join(f"{v:.2f}" for v in s["fresh_later_over_first_repeat"])
              + (f" (median {statistics.median(s['fresh_later_over_first_repeat']):.2f})." if s["fresh_later_over_first_repeat"] else "."),
              "- The fresh sweeps' own means between pairs (slowest / fastest): " + ", ".join(
                  f"{k} {v:.2f}" for k, v in s["fresh_between_pairs_min_over_max"].items()) + ".",
              f"- Time to step 1 from launch: repeats in kept processes {min(s['first_step_reused_s']):.2f}–"
              f"{max(s['first_step_reused_s']):.2f} s; trials that started their own "
              f"{min(s['first_step_fresh_s']):.2f}–{max(s['first_step_fresh_s']):.2f} s.", "",
              "| pair | point | kept (samples/s) | fresh (samples/s) | kept / fresh |", "|---:|---|---:|---:|---:|"]
    for i, p in enumerate(pairs, 1):
        for k in sorted(p["fresh"]["throughput"]):
            a, b = p["kept"]["throughput"][k], p["fresh"]["throughput"][k]
            lines.append(f"| {i} | {k} | {a:.0f} | {b:.0f} | {a / b:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    pairs = []
    for pair in range(args.pairs):
        done = {}
        for reuse in ((True, False) if pair % 2 == 0 else (False, True)):
            print(f"pair {pair + 1}/{args.pairs}: reuse_workers {reuse}", file=sys.stderr, flush=True)
            done["kept" if reuse else "fresh"] = sweep(reuse)
            print(f"  {done['kept' if reuse else 'fresh']['wall_s']:.1f} s", file=sys.stderr, flush=True)
        pairs.append(done)
    summary = summarize(pairs)
    machine = overhead.machine()
    results = ROOT / "bench" / "results"
    (results / "horovod-reuse.json").write_text(json.dumps({"machine": machine, "summary": summary, "pairs": pairs},
                                                           indent=2) + "\n")
    (results / "horovod-reuse.md").write_text(markdown(summary, pairs, machine))
    print((results / "horovod-reuse.md").read_text())


if __name__ == "__main__":
    main()
