"""Scaling-curve reports, rendered from results.jsonl alone: JSON and CSV for machines, Markdown and a
self-contained HTML page for people. Formatting only; the numbers come from orchestrator.scaling.

Rendering is deterministic: the same results.jsonl gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator import results, scaling
from orchestrator.report import comparison
from orchestrator.errors import UserError
from orchestrator.spec import execution_key

FILES = ("report.json", "report.csv", "report.md", "report.html")
SETTINGS = "recommend.json"
DEFAULTS = {"threshold": 0.8, "max_workers": None}


def build(records: list[dict], settings: dict | None = None) -> dict:
    """The report as data: what report.json holds and what every other format shows."""
    curves = scaling.curves(records)
    settings = {**DEFAULTS, **(settings or {})}
    failed = [r for r in records if r.get("status") != "ok"]
    ok = [r for r in records if r.get("status") == "ok"]
    first = records[0] if records else {}
    return {
        "job": first.get("job"),
        "source": results.FILENAME,
        "trials": {"ok": len(ok), "failed": len(failed)},
        "curves": [c.to_dict() for c in curves],
        "comparisons": [c.to_dict() for c in scaling.compare(curves)],
        "failed_trials": [
            {"trial_id": r["trial_id"], "error": r.get("error", "")} for r in failed
        ],
        "recovered_trials": [
            {"trial_id": r["trial_id"], "failures": r["failures"], "events": r.get("failure_events", [])}
            for r in ok if r.get("failures")
        ],
        "settings": _settings(ok),
        "adaptive": _adaptive_savings(records),
        "environment": first.get("environment", {}),
        **_predictions(ok, curves, settings),
        **comparison.sections(ok),
    }


def _predictions(records: list[dict], curves: list, settings: dict) -> dict:
    """Fitted scaling models, predictions with their band, and a recommended worker count per curve."""
    from orchestrator import fit

    fits, recommendations = [], []
    for curve, _, model in fit.fit_curves(records, curves):
        key = {"framework": curve.framework, "strategy": curve.strategy, "execution": curve.execution,
               "workload": curve.workload, "name": curve.name, "label": curve.label}
        if model is None:
            continue
        measured_max = max(model.measured)
        horizon = settings["max_workers"] or max(16, 4 * measured_max)
        rec = fit.recommend(model, settings["threshold"], horizon, baseline=curve.baseline_workers)
        predicted = []
        for n in range(1, horizon + 1):
            low, high = model.band(n)
            predicted.append({"workers": n, "throughput": model.predict(n), "low": low, "high": high,
                              "efficiency": fit.efficiency(model, n, curve.baseline_workers), "measured": n in model.measured})
        fits.append({**key, **model.to_dict(), "predicted": predicted})
        recommendations.append({**key, **rec.to_dict()})
    verdict = None
    if len(recommendations) > 1:
        ranked = sorted(recommendations, key=lambda r: r["predicted_throughput"], reverse=True)
        best, runner = ranked[0], ranked[1]
        verdict = {
            "best": best["label"],
            "workers": best["workers"],
            "throughput_ratio": best["predicted_throughput"] / runner["predicted_throughput"],
            "versus": runner["label"],
            "versus_workers": runner["workers"],
        }
    return {"fits": fits, "recommendations": recommendations, "verdict": verdict,
            "recommend_settings": {"threshold": settings["threshold"], "max_workers": settings["max_workers"]}}


def read_settings(out_dir: str | Path) -> dict:
    path = Path(out_dir) / SETTINGS
    return json.loads(path.read_text()) if path.exists() else {}


def _shares_cores(record: dict) -> bool:
    """Whether this trial's workers ran more threads in all than the cluster has CPUs (fractional-CPU
    workers make that possible). Its throughput then measures contention as much as scaling."""
    threads = record.get("threads_per_worker") or 1
    cluster = (record.get("environment") or {}).get("cluster_cpus") or 0
    return cluster > 0 and record["workers"] * threads > cluster


def _adaptive_savings(records: list[dict]) -> list[dict]:
    """Per arm of an adaptive sweep: trials planned (every candidate count x repeats) and run."""
    arms = {}
    for r in records:
        if r.get("adaptive"):
            key = execution_key(r["framework"], r["strategy"], r.get("execution"))
            entry = arms.setdefault(key, {"framework": r["framework"], "strategy": r["strategy"], "label": scaling.record_label(r),
                                          "planned_trials": len(r["adaptive"]["candidates"]) * r["adaptive"]["repeats"],
                                          "trials_run": 0, "workers_measured": set()})
            entry["trials_run"] += 1
            entry["workers_measured"].add(r["workers"])
    out = []
    for key in sorted(arms):
        entry = arms[key]
        entry["workers_measured"] = sorted(entry["workers_measured"])
        entry["trials_saved"] = entry["planned_trials"] - entry["trials_run"]
        out.append(entry)
    return out


def _settings(records: list[dict]) -> list[dict]:
    """Per arm and worker count, what was run: batch sizes, steps, threads, placement."""
    seen = {}
    for r in records:
        key = (execution_key(r["framework"], r["strategy"], r.get("execution")), r["workers"])
        seen.setdefault(key, {
            "framework": r["framework"], "strategy": r["strategy"], "execution": r.get("execution"),
            "label": scaling.record_label(r), "workers": r["workers"],
            "ray_workers": r["ray_workers"], "per_worker_batch": r.get("per_worker_batch"),
            "global_batch": r.get("global_batch"), "steps": r.get("steps"),
            "warmup_steps": r.get("warmup_steps"), "threads_per_worker": r.get("threads_per_worker"),
            "resources_per_worker": r.get("resources_per_worker"), "nodes": len(r.get("nodes", [])),
            "shares_cores": _shares_cores(r),
        })
    return [seen[k] for k in sorted(seen)]


def render(out_dir: str | Path) -> list[Path]:
    """Write every report file into ``out_dir`` from its results.jsonl, each atomically."""
    from orchestrator.report import html, tables

    out = Path(out_dir)
    try:
        records = results.read(out)
    except ValueError as err:
        raise UserError(str(err)) from None
    if not records:
        raise UserError(f"{out / results.FILENAME}: no trial results to report; run 'orchestrator sweep' first")
    data = build(records, read_settings(out))
    contents = {
        "report.json": json.dumps(data, indent=2, sort_keys=True) + "\n",
        "report.csv": tables.csv_text(data),
        "report.md": tables.markdown(data),
        "report.html": html.page(data),
    }
    written = []
    for name, text in contents.items():
        results.write_atomic(out / name, text)
        written.append(out / name)
    return written
