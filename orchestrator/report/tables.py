"""CSV (one row per curve point) and Markdown renderings of the report data."""

from __future__ import annotations

import csv
import io

CSV_COLUMNS = (
    "framework", "strategy", "workload", "workers", "repeats", "metric", "throughput", "throughput_std",
    "speedup", "efficiency", "efficiency_std", "step_time_mean_s", "test_accuracy",
)


def rows(data: dict):
    for curve in data["curves"]:
        for point in curve["points"]:
            yield {**{k: curve[k] for k in ("framework", "strategy", "workload")}, **point}


def csv_text(data: dict) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows(data):
        writer.writerow({k: _csv_value(row.get(k)) for k in CSV_COLUMNS})
    return buffer.getvalue()


def _csv_value(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def fmt(value, digits: int = 3, pct: bool = False) -> str:
    if value is None:
        return "–"
    if pct:
        return f"{100 * value:.1f}%"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def comparison_sentences(data: dict) -> list[str]:
    out = []
    for c in data["comparisons"]:
        out.append(
            f"At {c['workers']} worker(s), {c['faster']} is {c['throughput_ratio']:.2f}x the throughput of "
            f"{c['slower']}; {c['better_scaling']} scales better by {100 * c['efficiency_gap']:.1f} "
            "efficiency points."
        )
    return out


def markdown(data: dict) -> str:
    lines = [f"# Scaling report: {_md(data['job'])}", ""]
    lines.append(f"{data['trials']['ok']} trial(s) measured, {data['trials']['failed']} failed. "
                 "Throughput excludes warm-up; ± is the standard deviation over repeats.")
    lines.append("")
    lines += [f"- {_md(s)}" for s in comparison_sentences(data)]
    if data["comparisons"]:
        lines.append("")
    lines += ["| framework | strategy | workload | workers | repeats | throughput | ± | speedup | efficiency | test accuracy |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows(data):
        unit = "samples/s" if r["metric"] == "samples_per_sec" else "steps/s"
        lines.append(
            f"| {_md(r['framework'])} | {_md(r['strategy'])} | {_md(r['workload'])} | {r['workers']} | {r['repeats']} "
            f"| {fmt(r['throughput'])} {unit} | {fmt(r['throughput_std'])} | {r['speedup']:.2f} "
            f"| {fmt(r['efficiency'], pct=True)} | {fmt(r['test_accuracy'])} |"
        )
    if data["failed_trials"]:
        lines += ["", "## Failed trials", ""]
        lines += [f"- `{_md(f['trial_id'])}`: {_md(f['error'])}" for f in data["failed_trials"]]
    lines += ["", "Efficiency = throughput(N) / (N × throughput(1)); rendered from results.jsonl by "
              "`orchestrator report`.", ""]
    return "\n".join(lines)
