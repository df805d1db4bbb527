"""The default sweep with today's launcher default against the one before it, side by side (issue #22).

    .venv/bin/python bench/sweep_reuse.py [--pairs 3]

Each pair runs `orchestrator sweep jobs/digits-mlp.yaml` twice through the CLI, whole process, embedded Ray
cluster: once as the job is (no launcher named: plain actors, the repeats of each (arm, worker count) in the
same worker processes) and once with `launcher: ray_train` (the default before). The pairs alternate which
goes first, so a drift of the machine lands on both alike. Then, in the same pair, bare `torchrun` at 1 and 2
workers for the time to first step. Measured:

  wall time          CLI start to exit, and its ratio (new / old) within each pair;
  training share     the trials' training time (first step to last, orchestrator.measuring.measure) over the wall time;
  time to first step the first trial's (from the CLI's start, and from its own launch) and a reused repeat's
                     (from its launch), against torchrun's (process start to step 1 done on every rank);
  agreement          each arm and worker count's throughput in the reused repeats against the fresh ones;
  import ceiling     the share the sweep could reach if everything but the workers' own imports were free:
                     for each fresh worker group of the sweep, its workload module imported in as many bare
                     `python` processes at once as the group has workers (no Ray); the ceiling is training
                     over training plus those imports, in the same pair.

Writes bench/results/sweep-reuse.{json,md}. Not a test: timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import overhead  # noqa: E402

GOALS = {"wall_ratio": 0.5, "training_share": 0.25, "reused_first_step_s": 1.5}


def first_steps(cost: dict) -> dict:
    """Time to first step of the sweep's first trial and of its reused repeats."""
    records = [r for r in cost["records"] if r["status"] == "ok"]
    first = records[0]
    reused = [r for r in records if (r.get("worker_reuse") or {}).get("use", 1) > 1]
    return {
        "first_trial": first["trial_id"],
        "first_from_cli_s": first["launched_at"] + first["time_to_first_step_s"] - cost["started_wall"],
        "first_from_launch_s": first["time_to_first_step_s"],
        "reused": {r["trial_id"]: r["time_to_first_step_s"] for r in reused},
        "fresh_from_launch": {r["trial_id"]: r["time_to_first_step_s"] for r in records
                              if (r.get("worker_reuse") or {}).get("use", 1) == 1},
    }


WORKLOADS = {"torch": "orchestrator.workloads.torch_train", "tensorflow": "orchestrator.workloads.tf_train"}


def bare_import_s(framework: str, processes: int) -> float:
    """Wall time of importing the framework's workload module in ``processes`` bare Python processes started
    together (a fresh worker group's workers do the same at once, on the same cores)."""
    code = f"import {WORKLOADS[framework]}"
    started = time.perf_counter()
    running = [subprocess.Popen([overhead.PY, "-c", code], env=overhead._env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(processes)]
    if any(p.wait() for p in running):
        raise RuntimeError(f"importing {WORKLOADS[framework]} failed")
    return time.perf_counter() - started


def import_ceiling(cost: dict) -> dict:
    """The training share the sweep could reach if its only cost beyond training were its fresh workers' imports."""
    records = [r for r in cost["records"] if r["status"] == "ok"]
    fresh = [r for r in records if (r.get("worker_reuse") or {}).get("use", 1) == 1]
    imports = {f"{r['framework']}@{r['workers']}": bare_import_s(r["framework"], r["workers"]) for r in fresh}
    training = sum(r["training_s"] for r in records)
    return {"imports_s": imports, "training_s": training,
            "ceiling": training / (training + sum(imports.values()))}


def agreement(cost: dict) -> list[dict]:
    """Per (arm, workers): the fresh repeat's throughput and the reused ones'."""
    rows: dict[tuple, dict] = {}
    for r in cost["records"]:
        if r["status"] != "ok":
            continue
        row = rows.setdefault((r["arm"], r["workers"]), {"arm": r["arm"], "workers": r["workers"], "fresh": [], "reused": []})
        row["reused" if (r.get("worker_reuse") or {}).get("use", 1) > 1 else "fresh"].append(r["samples_per_sec"])
    return list(rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    pairs = []
    for index in range(args.pairs):
        order = ["new", "old"] if index % 2 == 0 else ["old", "new"]
        pair = {}
        for which in order:
            print(f"pair {index + 1}/{args.pairs}: the default sweep, {'as the job is' if which == 'new' else 'launcher: ray_train'} ...",
                  flush=True)
            pair[which] = overhead.sweep_cost(None if which == "new" else "ray_train")
            print(f"  {pair[which]['wall_s']:.1f} s, training {100 * pair[which]['training_fraction']:.1f}%", flush=True)
        print(f"pair {index + 1}/{args.pairs}: bare torchrun at 1 and 2 workers ...", flush=True)
        pair["torchrun"] = {str(n): overhead.bare_torch(n)["time_to_first_step_s"] for n in (1, 2)}
        print(f"pair {index + 1}/{args.pairs}: the workers' imports in bare processes ...", flush=True)
        pair["import_ceiling"] = import_ceiling(pair["new"])
        pair["first_steps"] = first_steps(pair["new"])
        pair["agreement"] = agreement(pair["new"])
        for which in ("new", "old"):
            pair[which] = {k: v for k, v in pair[which].items() if k not in ("records", "started_wall")}
        pairs.append(pair)
    summary = summarize(pairs)
    out = ROOT / "bench/results"
    (out / "sweep-reuse.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "sweep-reuse.md").write_text(markdown(summary))
    print(markdown(summary))


def summarize(pairs: list[dict]) -> dict:
    ratios = [p["new"]["wall_s"] / p["old"]["wall_s"] for p in pairs]
    reused = [s for p in pairs for s in p["first_steps"]["reused"].values()]
    return {
        "date": time.strftime("%Y-%m-%d"),
        "command": "bench/sweep_reuse.py --pairs %d" % len(pairs),
        "machine": overhead.machine(),
        "goals": GOALS,
        "wall_ratio": {"per_pair": ratios, "median": statistics.median(ratios)},
        "training_share": {"new": [p["new"]["training_fraction"] for p in pairs],
                           "old": [p["old"]["training_fraction"] for p in pairs],
                           "import_ceiling": [p["import_ceiling"]["ceiling"] for p in pairs]},
        "reused_first_step_s": {"all": reused, "max": max(reused) if reused else None,
                                "median": statistics.median(reused) if reused else None},
        "pairs": pairs,
    }


def markdown(summary: dict) -> str:
    w, share, reused = summary["wall_ratio"], summary["training_share"], summary["reused_first_step_s"]
    m = summary["machine"]

    def mark(ok: bool) -> str:
        return "✓" if ok else "✗"

    lines = [
        "# The default sweep: actors with reused workers against Ray Train", "",
        f"{summary['date']}, {m['cpus']} CPUs ({m['cpu']}), Ray {m['ray']}, torch {m['torch']}, TensorFlow {m['tensorflow']}. "
        f"`{summary['command']}`: `orchestrator sweep jobs/digits-mlp.yaml` (8 trials) as the job is (launcher "
        "unset: actors, repeats in the same processes) and with `launcher: ray_train` (the earlier default), "
        "interleaved pairs, whole process, embedded Ray cluster.", "",
        "| pair | as the job is | launcher: ray_train | ratio | training share (new) | training share (old) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i, p in enumerate(summary["pairs"]):
        lines.append(f"| {i + 1} | {p['new']['wall_s']:.1f} s | {p['old']['wall_s']:.1f} s | {w['per_pair'][i]:.2f} "
                     f"| {100 * p['new']['training_fraction']:.1f}% | {100 * p['old']['training_fraction']:.1f}% |")
    lines += [
        "",
        f"- Wall time ratio, median {w['median']:.2f} (goal ≤ {GOALS['wall_ratio']}) {mark(w['median'] <= GOALS['wall_ratio'])}.",
        f"- Training share of the new default's sweep, median {100 * statistics.median(share['new']):.1f}% (goal ≥ "
        f"{100 * GOALS['training_share']:.0f}%) {mark(statistics.median(share['new']) >= GOALS['training_share'])}; "
        f"the old default's {100 * statistics.median(share['old']):.1f}%. The ceiling the workers' own imports "
        f"leave (training over training plus each fresh worker group's workload import in bare processes, "
        f"no Ray): median {100 * statistics.median(share['import_ceiling']):.1f}%.",
    ]
    if reused["max"] is not None:
        lines.append(f"- A reused repeat reaches step 1 in {reused['median']:.2f} s (median), at most {reused['max']:.2f} s "
                     f"(goal ≤ {GOALS['reused_first_step_s']} s) {mark(reused['max'] <= GOALS['reused_first_step_s'])}.")
    lines += ["", "Time to first step (s), per pair: the sweep's first trial from the CLI's start and from its launch; "
              "fresh worker groups and reused repeats from their launch; bare torchrun from its start.", "",
              "| pair | first trial (CLI) | first trial (launch) | fresh groups | reused repeats | torchrun 1 | torchrun 2 |",
              "|---:|---:|---:|---|---|---:|---:|"]
    for i, p in enumerate(summary["pairs"]):
        f = p["first_steps"]
        lines.append(f"| {i + 1} | {f['first_from_cli_s']:.2f} | {f['first_from_launch_s']:.2f} "
                     f"| {', '.join(f'{v:.2f}' for v in f['fresh_from_launch'].values())} "
                     f"| {', '.join(f'{v:.2f}' for v in f['reused'].values())} "
                     f"| {p['torchrun']['1']:.2f} | {p['torchrun']['2']:.2f} |")
    lines += ["", "The workers' imports, in bare `python` processes (as many at once as the group's workers), "
              "against the sweep's training (s):", "",
              "| pair | " + " | ".join(summary["pairs"][0]["import_ceiling"]["imports_s"]) + " | training | ceiling |",
              "|---:|" + "---:|" * (len(summary["pairs"][0]["import_ceiling"]["imports_s"]) + 2)]
    for i, p in enumerate(summary["pairs"]):
        c = p["import_ceiling"]
        lines.append(f"| {i + 1} | " + " | ".join(f"{v:.2f}" for v in c["imports_s"].values())
                     + f" | {c['training_s']:.2f} | {100 * c['ceiling']:.1f}% |")
    lines += ["", "Throughput (samples/s) of fresh and reused repeats, per arm and worker count (the new default's "
              "sweeps):", "", "| pair | arm | workers | fresh | reused | reused / fresh |", "|---:|---|---:|---:|---:|---:|"]
    for i, p in enumerate(summary["pairs"]):
        for row in p["agreement"]:
            if row["fresh"] and row["reused"]:
                ratio = statistics.mean(row["reused"]) / statistics.mean(row["fresh"])
                lines.append(f"| {i + 1} | {row['arm']} | {row['workers']} | {statistics.mean(row['fresh']):.0f} "
                             f"| {statistics.mean(row['reused']):.0f} | {ratio:.2f} |")
    lines += ["", "Where the new default's wall time goes (median over pairs, s):", ""]
    parts = summary["pairs"][0]["new"]["parts"]
    for key in parts:
        new = statistics.median(p["new"]["parts"][key] for p in summary["pairs"])
        old = statistics.median(p["old"]["parts"][key] for p in summary["pairs"])
        lines.append(f"- {key}: {new:.1f} (launcher: ray_train {old:.1f})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
