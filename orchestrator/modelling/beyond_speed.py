"""Pure analysis of the comparison beyond speed, which orchestrator.modelling.analysis puts in the report: graph vs eager
execution, deployment exports, TensorBoard runs, and lines of code in the training step. Built from the
successful trials' records (orchestrator.measuring.results.TrialRecord) alone."""

from __future__ import annotations

import statistics
from collections import defaultdict

from orchestrator.modelling.scaling import record_label
from orchestrator.job.spec import DEFAULT_EXECUTION, EXECUTIONS


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def execution(records: list[dict]) -> dict:
    """Throughput and compile time per execution, for each framework, strategy and worker count."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("execution"):
            groups[(r["framework"], r["strategy"], r["workload"], r["workers"], r["execution"])].append(r)
    rows = []
    for (framework, strategy, workload, workers, mode), trials in sorted(groups.items()):
        metric = "samples_per_sec" if all(t.get("samples_per_sec") is not None for t in trials) else "steps_per_sec"
        rows.append({
            "framework": framework, "strategy": strategy, "workload": workload, "workers": workers,
            "execution": mode, "trials": len(trials), "metric": metric,
            "throughput": _mean([t[metric] for t in trials]),
            "step_time_mean_s": _mean([t.get("step_time_mean_s") for t in trials]),
            "first_step_s": _mean([t.get("first_step_s") for t in trials]),
            "compile_s": _mean([t.get("compile_s") for t in trials]),
        })
    # Each row's throughput against its framework's default execution at the same strategy and workers.
    default = {(r["framework"], r["strategy"], r["workload"], r["workers"]): r["throughput"]
               for r in rows if r["execution"] == DEFAULT_EXECUTION.get(r["framework"])}
    for r in rows:
        base = default.get((r["framework"], r["strategy"], r["workload"], r["workers"]))
        r["vs_default"] = r["throughput"] / base if base else None
    modes = defaultdict(set)
    for r in rows:
        modes[r["framework"]].add(r["execution"])
    return {
        "rows": rows,
        "compared": sorted(f for f, m in modes.items() if len(m) > 1),
        "defaults": DEFAULT_EXECUTION,
        "choices": {k: list(v) for k, v in EXECUTIONS.items()},
    }


def deployment(records: list[dict]) -> list[dict]:
    out = []
    for r in sorted((r for r in records if r.get("deployment")), key=lambda r: r["trial_id"]):
        out.append({"trial_id": r["trial_id"], "framework": r["framework"], "strategy": r["strategy"],
                    "execution": r.get("execution"), "label": record_label(r), "workers": r["workers"],
                    "dir": r["deployment"]["dir"], "test_samples": r["deployment"].get("test_samples"),
                    "dataset": r["deployment"].get("dataset"),
                    "models": r["deployment"]["models"]})
    return out


def tensorboard(records: list[dict]) -> dict:
    runs = []
    for r in sorted((r for r in records if r.get("tensorboard")), key=lambda r: r["trial_id"]):
        board = r["tensorboard"]
        runs.append({"trial_id": r["trial_id"], "label": record_label(r), "workers": r["workers"],
                     "logdir": board["logdir"], "scalars": board.get("scalars", {}),
                     "graph_nodes": board.get("graph_nodes"), "error": board.get("error")})
    return {"logdir": "tensorboard", "runs": runs}


def lines_of_code(records: list[dict]) -> list[dict]:
    seen = {}
    for r in records:
        lines = r.get("step_lines")
        if lines:
            seen.setdefault(lines["framework"], {**lines, "workloads": set()})["workloads"].add(r["workload"])
    return [{**entry, "workloads": sorted(entry["workloads"])} for _, entry in sorted(seen.items())]


def sections(records: list[dict]) -> dict:
    return {
        "execution": execution(records),
        "deployment": deployment(records),
        "tensorboard": tensorboard(records),
        "lines_of_code": lines_of_code(records),
    }
