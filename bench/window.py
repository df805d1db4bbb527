"""Does a longer measurement window make the default job's numbers tighter? (issue #22's training share)

    .venv/bin/python bench/window.py [--pairs 3] [--steps 150 800]

Each pair runs `orchestrator sweep jobs/digits-mlp.yaml` (the job as it is: actors, repeats in reused worker
processes) once at each `training.steps`, interleaved, the order alternating between pairs, whole process,
embedded Ray cluster. Everything else in the job is unchanged (20 warm-up steps, 2 repeats, 1 and 2 workers).
Measured per sweep, from its results.jsonl and report.json:

  window          the timed seconds of each trial (after warm-up), median over the sweep's trials;
  repeat spread   for each (arm, worker count), max/min - 1 of the repeats' samples/s;
  efficiency      each arm's scaling efficiency at 2 workers (the report's curve);
  wall, share     CLI start to exit, and the trials' training time over it.

Across the pairs, for each number of steps: the median repeat spread, and the range (max - min) of each arm's
efficiency over the sweeps: the number the report's reader takes home, and how much it moves from run to run.

Writes bench/results/window.{json,md}. Not a test: timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import overhead  # noqa: E402


def sweep(steps: int) -> dict:
    work = Path(tempfile.mkdtemp())
    text = (ROOT / "jobs/digits-mlp.yaml").read_text()
    job = work / "digits-mlp.yaml"
    job.write_text(re.sub(r"(?m)^(\s*steps:\s*)\d+", rf"\g<1>{steps}", text, count=1))
    out = work / "out"
    started = time.perf_counter()
    subprocess.run([str(overhead.BIN / "orchestrator"), "sweep", str(job), "--out", str(out)], cwd=ROOT,
                   capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ok = [r for r in records if r["status"] == "ok"]
    report = json.loads((out / "report.json").read_text())
    by_point: dict[str, list[float]] = {}
    for r in ok:
        by_point.setdefault(f"{r['arm']}@{r['workers']}", []).append(r["samples_per_sec"])
    return {
        "steps": steps, "wall_s": wall, "trials": len(records), "failed": len(records) - len(ok),
        "training_share": report["sweep_time"]["training_s"] / wall,
        "window_s": statistics.median(r["measured_seconds"] for r in ok),
        "repeat_spread": {k: max(v) / min(v) - 1 for k, v in by_point.items() if len(v) > 1},
        "efficiency": {c["name"]: p["efficiency"] for c in report["curves"] for p in c["points"] if p["workers"] == 2},
        "test_accuracy": {f"{r['arm']}@{r['workers']}": r["test_accuracy"] for r in ok},
    }


def summarize(runs: list[dict], steps: list[int]) -> dict:
    out = {}
    for s in steps:
        mine = [r for r in runs if r["steps"] == s]
        arms = sorted({a for r in mine for a in r["efficiency"]})
        out[str(s)] = {
            "sweeps": len(mine),
            "wall_s_median": statistics.median(r["wall_s"] for r in mine),
            "training_share_median": statistics.median(r["training_share"] for r in mine),
            "window_s_median": statistics.median(r["window_s"] for r in mine),
            "repeat_spread_median": statistics.median(v for r in mine for v in r["repeat_spread"].values()),
            "repeat_spread_max": max(v for r in mine for v in r["repeat_spread"].values()),
            "efficiency": {a: sorted(r["efficiency"][a] for r in mine if a in r["efficiency"]) for a in arms},
            "efficiency_range": {a: max(r["efficiency"][a] for r in mine) - min(r["efficiency"][a] for r in mine)
                                 for a in arms},
        }
    return out


def markdown(summary: dict, runs: list[dict], machine: dict, pairs: int) -> str:
    lines = [f"# The default job's measurement window: {' against '.join(summary)} steps", "",
             f"{time.strftime('%Y-%m-%d')}, {machine.get('cpus')} CPUs, `bench/window.py --pairs {pairs}`: "
             "`orchestrator sweep jobs/digits-mlp.yaml` as the job is, at each `training.steps`, interleaved pairs, "
             "whole process, embedded Ray cluster.", "",
             "| steps | sweeps | wall (median) | training share | timed window per trial | repeat spread "
             "(median, max) | efficiency at 2 workers (each sweep) | its range |",
             "|---:|---:|---:|---:|---:|---|---|---|"]
    for s, v in summary.items():
        eff = "; ".join(f"{a}: " + ", ".join(f"{e:.2f}" for e in es) for a, es in v["efficiency"].items())
        ranges = "; ".join(f"{a}: {r:.2f}" for a, r in v["efficiency_range"].items())
        lines.append(f"| {s} | {v['sweeps']} | {v['wall_s_median']:.1f} s | {100 * v['training_share_median']:.1f}% | "
                     f"{v['window_s_median']:.2f} s | {100 * v['repeat_spread_median']:.1f}%, "
                     f"{100 * v['repeat_spread_max']:.1f}% | {eff} | {ranges} |")
    lines += ["", "Per sweep, in the order run:", "", "| # | steps | wall | share | repeat spread per point |",
              "|---:|---:|---:|---:|---|"]
    for i, r in enumerate(runs, 1):
        spread = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(r["repeat_spread"].items()))
        lines.append(f"| {i} | {r['steps']} | {r['wall_s']:.1f} s | {100 * r['training_share']:.1f}% | {spread} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, nargs=2, default=[150, 800])
    args = parser.parse_args()
    runs = []
    for pair in range(args.pairs):
        for s in (args.steps if pair % 2 == 0 else args.steps[::-1]):
            print(f"pair {pair + 1}/{args.pairs}: {s} steps", file=sys.stderr, flush=True)
            runs.append(sweep(s))
            r = runs[-1]
            print(f"  {r['wall_s']:.1f} s, share {100 * r['training_share']:.1f}%, efficiency {r['efficiency']}",
                  file=sys.stderr, flush=True)
    summary = summarize(runs, args.steps)
    machine = overhead.machine()
    results = ROOT / "bench" / "results"
    (results / "window.json").write_text(json.dumps({"machine": machine, "summary": summary, "runs": runs},
                                                    indent=2) + "\n")
    (results / "window.md").write_text(markdown(summary, runs, machine, args.pairs))
    print((results / "window.md").read_text())


if __name__ == "__main__":
    main()
