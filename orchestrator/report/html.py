"""The self-contained HTML report: inline SVG plots, tables, no external assets or scripts.

Every string that comes from a user (job name, workload, entrypoint, error text) goes through escape().
"""

from __future__ import annotations

from html import escape

from orchestrator.report import plots
from orchestrator.report.tables import comparison_sentences, fmt, recommendation_lines, recovery_lines, rows

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;color:#222;padding:0 1rem}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.9rem} th,td{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.plots{display:flex;flex-wrap:wrap;gap:1rem} .plots figure{margin:0} .plots svg{max-width:100%;height:auto}
.note{color:#555;font-size:.9rem} code{background:#f3f3f3;padding:0 .2rem}
"""


def page(data: dict) -> str:
    curves = data["curves"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Scaling report: {escape(str(data['job']))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Scaling report: {escape(str(data['job']))}</h1>",
        f"<p class=note>{data['trials']['ok']} trial(s) measured, {data['trials']['failed']} failed. "
        "Throughput excludes warm-up; error bars are the standard deviation over repeats. "
        "Efficiency = X(N) / (N × X(1)).</p>",
    ]
    sentences = comparison_sentences(data)
    if sentences:
        parts.append("<h2>PyTorch and TensorFlow, side by side</h2><ul>")
        parts += [f"<li>{escape(s)}</li>" for s in sentences]
        parts.append("</ul>")
    if curves:
        parts.append('<div class=plots>')
        parts.append(f"<figure>{plots.throughput_svg(curves, data['fits'])}</figure>")
        parts.append(f"<figure>{plots.efficiency_svg(curves, data['fits'])}</figure>")
        parts.append("</div>")
    advice = recommendation_lines(data)
    if advice:
        parts.append("<h2>How many workers is it worth?</h2><ul>")
        parts += [f"<li>{escape(line)}</li>" for line in advice]
        parts.append("</ul><p class=note>Dashed lines are the fitted model, the shaded band the 10th–90th "
                     "percentile of a bootstrap over repeats; beyond the measured counts they extrapolate.</p>")
    parts.append("<h2>Scaling table</h2>")
    parts.append(_table(
        ["framework", "strategy", "execution", "workload", "workers", "repeats", "throughput", "±", "unit",
         "speedup", "efficiency", "step time", "test accuracy"],
        [[r["framework"], r["strategy"], r["execution"], r["workload"], r["workers"], r["repeats"], fmt(r["throughput"]),
          fmt(r["throughput_std"]), "samples/s" if r["metric"] == "samples_per_sec" else "steps/s",
          f"{r['speedup']:.2f}", fmt(r["efficiency"], pct=True), f"{1000 * r['step_time_mean_s']:.2f} ms",
          fmt(r["test_accuracy"])] for r in rows(data)],
    ))
    if data["settings"]:
        parts.append("<h2>What ran</h2>")
        parts.append(_table(
            ["framework", "strategy", "execution", "workers", "Ray workers", "batch / worker", "global batch", "steps",
             "warm-up", "threads / worker", "resources / worker", "nodes", "shares cores"],
            [[s["framework"], s["strategy"], s["execution"], s["workers"], s["ray_workers"], s["per_worker_batch"],
              s["global_batch"], s["steps"], s["warmup_steps"], s["threads_per_worker"],
              ", ".join(f"{k}: {v:g}" for k, v in sorted((s["resources_per_worker"] or {}).items())), s["nodes"],
              "yes" if s["shares_cores"] else "no"]
             for s in data["settings"]],
        ))
        if any(s["shares_cores"] for s in data["settings"]):
            parts.append("<p class=note>Where workers share cores (fractional CPUs, or more threads than the "
                         "cluster has CPUs), throughput measures contention as much as scaling.</p>")
    recoveries = recovery_lines(data)
    if recoveries:
        parts.append("<h2>Recovered from failures</h2><ul>")
        parts += [f"<li>{escape(line)}</li>" for line in recoveries]
        parts.append("</ul>")
    if data["failed_trials"]:
        parts.append("<h2>Failed trials</h2><ul>")
        parts += [f"<li><code>{escape(f['trial_id'])}</code>: {escape(f['error'])}</li>" for f in data["failed_trials"]]
        parts.append("</ul>")
    env = data.get("environment") or {}
    if env:
        parts.append("<h2>Environment</h2>")
        parts.append(_table(["", ""], [[k, v] for k, v in sorted(env.items())]))
    parts.append("<p class=note>Rendered from results.jsonl by <code>orchestrator report</code>.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _table(header: list[str], body: list[list]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    lines = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for row in body:
        cells = "".join(
            f"<td class=n>{escape(str(v))}</td>" if isinstance(v, (int, float)) else f"<td>{escape(_text(v))}</td>"
            for v in row
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _text(value) -> str:
    return "–" if value is None else str(value)
