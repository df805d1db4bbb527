"""Scaling-curve reports, rendered from results.jsonl alone: JSON and CSV for machines, Markdown and a
self-contained HTML page for people. Formatting only; the numbers come from orchestrator.scaling.

Rendering is deterministic: the same results.jsonl gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator import results, scaling
from orchestrator.errors import UserError

FILES = ("report.json", "report.csv", "report.md", "report.html")


def build(records: list[dict]) -> dict:
    """The report as data: what report.json holds and what every other format shows."""
    curves = scaling.curves(records)
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
        "settings": _settings(ok),
        "environment": first.get("environment", {}),
    }


def _settings(records: list[dict]) -> list[dict]:
    """Per arm and worker count, what was run: batch sizes, steps, threads, placement."""
    seen = {}
    for r in records:
        key = (r["framework"], r["strategy"], r["workers"])
        seen.setdefault(key, {
            "framework": r["framework"], "strategy": r["strategy"], "workers": r["workers"],
            "ray_workers": r["ray_workers"], "per_worker_batch": r.get("per_worker_batch"),
            "global_batch": r.get("global_batch"), "steps": r.get("steps"),
            "warmup_steps": r.get("warmup_steps"), "threads_per_worker": r.get("threads_per_worker"),
            "resources_per_worker": r.get("resources_per_worker"), "nodes": len(r.get("nodes", [])),
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
    data = build(records)
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
