"""Scaling-curve reports, rendered from results.jsonl alone: JSON and CSV for machines, Markdown and a
self-contained HTML page for people. Formatting only; the numbers come from orchestrator.modelling.analysis.

Rendering is deterministic: the same results.jsonl gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.measuring import results
from orchestrator.modelling import analysis
from orchestrator.errors import UserError

FILES = ("report.json", "report.csv", "report.md", "report.html")
SETTINGS = "recommend.json"


def build(records, settings: dict | None = None, torn: list[int] = ()) -> dict:
    """The report as data (orchestrator.modelling.analysis), from results.jsonl's lines: the latest of each trial id;
    ``torn``: the numbers of the lines that were not JSON (skipped)."""
    from orchestrator.report import prose

    return prose.annotate(analysis.analyze(results.latest(records, torn), settings))


def read_settings(out_dir: str | Path) -> dict:
    path = Path(out_dir) / SETTINGS
    return json.loads(path.read_text()) if path.exists() else {}


def render(out_dir: str | Path) -> list[Path]:
    """Write every report file into ``out_dir`` from its results.jsonl, each atomically."""
    out = Path(out_dir)
    try:
        found = results.scan(out)
    except ValueError as err:
        raise UserError(str(err)) from None
    if not found.lines:
        raise UserError(f"{out / results.FILENAME}: no trial results to report; run 'orchestrator sweep' first")
    return write(out, build(found.lines, read_settings(out), found.torn))


def write(out_dir: str | Path, data: dict) -> list[Path]:
    """Write every report file of ``data`` (``build``'s) into ``out_dir``, each atomically."""
    from orchestrator.report import html, prose, tables

    out = Path(out_dir)
    data = prose.annotate(data)
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
