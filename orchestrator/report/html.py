"""The self-contained HTML report: inline SVG plots, tables, no external assets or scripts.

Every string that comes from a user (job name, workload, entrypoint, error text) goes through escape().
"""

from __future__ import annotations

from html import escape

from orchestrator.report import plots
from orchestrator.report.tables import (BREAKDOWN_NOTE, breakdown_table, comparison_sentences, efficiency_footer,
                                        exports_evaluated_on, fmt, recommendation_lines, recovery_lines, rows,
                                        trial_counts, unit, target_table, cost_lines, cost_table, launcher_lines,
                                        sweep_time_table)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;color:#222;padding:0 1rem;
overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%;margin:.5rem 0} .scroll td,.scroll th{overflow-wrap:normal} .scroll td{white-space:nowrap}
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
        f"<p class=note>{escape(trial_counts(data))} "
        "Throughput excludes warm-up; error bars are the standard deviation over repeats. "
        f"{escape(efficiency_footer(data))}</p>",
    ]
    notes = data.get("unit_notes") or []
    if notes:
        parts.append("<ul class=note>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    sentences = comparison_sentences(data)
    if sentences:
        parts.append("<h2>PyTorch and TensorFlow, side by side</h2><ul>")
        parts += [f"<li>{escape(s)}</li>" for s in sentences]
        parts.append("</ul>")
    if curves:
        parts.append('<div class=plots>')
        # One throughput axis per unit: samples/s and reports/s never share one.
        for metric in sorted({c["metric"] for c in curves}):
            same = [c for c in curves if c["metric"] == metric]
            parts.append(f"<figure>{plots.throughput_svg(same, data['fits'])}</figure>")
        parts.append(f"<figure>{plots.efficiency_svg(curves, data['fits'])}</figure>")
        parts.append("</div>")
    parts += _breakdown(data)
    advice = recommendation_lines(data)
    if advice:
        parts.append("<h2>How many workers is it worth?</h2><ul>")
        parts += [f"<li>{escape(line)}</li>" for line in advice]
        parts.append("</ul><p class=note>Dashed lines are the chosen model, the shaded band its 10th–90th "
                     "percentile (curve fits: a bootstrap over repeats; the physical model: the measurements' "
                     "spread, widened beyond the measured counts); dotted lines a what-if, beside it. Beyond the "
                     "measured counts they extrapolate.</p>")
    header, body = target_table(data)
    if body:
        parts.append("<h2>Time to target</h2><p class=note>From the first data touch to the evaluation that first "
                     "meets the target; statistical efficiency: samples to target at the smallest count that "
                     "reached it over samples to target at N.</p>")
        parts.append(_table(header, body))
    priced = cost_lines(data)
    if priced:
        parts.append("<h2>What each size costs</h2><ul>" + "".join(f"<li>{escape(line)}</li>" for line in priced)
                     + "</ul>")
        header, body = cost_table(data)
        if body:
            frameworks = {c["name"]: c["framework"] for c in curves}
            parts.append(f"<div class=plots><figure>{plots.cost_svg(data['cost']['rows'], frameworks)}</figure></div>")
            parts.append(_table(header, body))
    parts.append("<h2>Scaling table</h2>")
    parts.append(_table(
        ["framework", "strategy", "execution", "workload", "workers", "repeats", "throughput", "±", "unit",
         "speedup", "efficiency", "step time", "test accuracy"],
        [[r["framework"], r["strategy"], r["execution"], r["workload"], r["workers"], r["repeats"], fmt(r["throughput"]),
          fmt(r["throughput_std"]), unit(r["metric"]),
          f"{r['speedup']:.2f}", fmt(r["efficiency"], pct=True),
          f"{1000 * r['step_time_mean_s']:.2f} ms" + (" between reports" if r["metric"] == "reports_per_sec" else ""),
          fmt(r["test_accuracy"])] for r in rows(data)],
    ))
    if data["settings"]:
        parts.append("<h2>What ran</h2>")
        parts.append(_table(
            ["framework", "strategy", "execution", "workers", "scaling", "launcher", "Ray workers", "batch / worker",
             "global batch", "steps", "warm-up", "threads / worker", "resources / worker", "nodes", "shares cores"],
            [[s["framework"], s["strategy"], s["execution"], s["workers"], s.get("scaling"), s.get("launcher"),
              s["ray_workers"], s["per_worker_batch"],
              s["global_batch"], s["steps"], s["warmup_steps"], s["threads_per_worker"],
              ", ".join(f"{k}: {v:g}" for k, v in sorted((s["resources_per_worker"] or {}).items())), s["nodes"],
              "yes" if s["shares_cores"] else "no"]
             for s in data["settings"]],
        ))
        parts.append("<ul>" + "".join(f"<li>{escape(line)}</li>" for line in launcher_lines(data)) + "</ul>")
        if any(s["shares_cores"] for s in data["settings"]):
            parts.append("<p class=note>Where workers share cores (fractional CPUs, or more threads than the "
                         "cluster has CPUs), throughput measures contention as much as scaling.</p>")
    parts += _beyond_speed(data)
    spent = data.get("sweep_time")
    if spent:
        parts.append("<h2>Where the sweep's time went</h2>")
        parts.append(f"<p>{escape(spent['sentence'])}</p>")
        if spent.get("notes"):
            parts.append("<ul class=note>" + "".join(f"<li>{escape(n)}</li>" for n in spent["notes"]) + "</ul>")
        parts.append(_table(*sweep_time_table(data)))
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
    parts.append(f"<p class=note>Rendered from results.jsonl by <code>orchestrator report</code> (orchestrator "
                 f"{escape(str(data.get('orchestrator_version', '?')))}; records by "
                 f"{escape(', '.join(data.get('recorded_by') or ['?']))}).</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _breakdown(data: dict) -> list[str]:
    section = data.get("breakdown") or {}
    header, body = breakdown_table(data)
    if not body and not section.get("notes"):
        return []
    parts = ["<h2>Why it scales as it does</h2>"]
    lines = section.get("sentences", []) + section.get("notes", [])
    if lines:
        parts.append("<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>")
    measured = [r for r in section.get("rows", []) if r.get("compute_ms") is not None]
    benches = [r for r in section.get("rows", []) if r.get("collective")]
    if measured or benches:
        parts.append("<div class=plots>")
        if measured:
            parts.append(f"<figure>{plots.breakdown_svg(measured)}</figure>")
        if benches:
            parts.append(f"<figure>{plots.bandwidth_svg(benches)}</figure>")
        parts.append("</div>")
    if body:
        parts.append(_table(header, body))
        parts.append(f"<p class=note>{escape(BREAKDOWN_NOTE)}</p>")
    return parts


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(href, quote=True)}">{escape(text)}</a>'


def _beyond_speed(data: dict) -> list[str]:
    """Graph vs eager, deployment, TensorBoard and lines of code: the comparison beyond throughput."""
    parts = []
    execution = data.get("execution") or {}
    rows = execution.get("rows") or []
    if rows:
        parts.append("<h2>Graph vs eager execution</h2>")
        if execution.get("compared"):
            parts.append(f"<div class=plots><figure>{plots.execution_svg(rows)}</figure></div>")
        else:
            parts.append("<p class=note>Each framework ran in one execution mode only; add arms with "
                         "<code>execution: eager | compiled | xla</code> (see <code>jobs/digits-execution.yaml</code>) "
                         "to compare them.</p>")
        parts.append(_table(
            ["framework", "strategy", "workers", "execution", "throughput", "unit", "vs default", "step time",
             "first step", "compile time"],
            [[r["framework"], r["strategy"], r["workers"], r["execution"], fmt(r["throughput"]),
              unit(r["metric"]),
              f"{r['vs_default']:.2f}x" if r["vs_default"] else None,
              f"{1000 * r['step_time_mean_s']:.2f} ms" if r["step_time_mean_s"] else None,
              f"{r['first_step_s']:.2f} s" if r["first_step_s"] is not None else None,
              f"{r['compile_s']:.2f} s" if r["compile_s"] is not None else None] for r in rows],
        ))
        parts.append("<p class=note>eager: op by op from Python; compiled: torch.compile (TorchDynamo + "
                     "Inductor) or tf.function; xla: tf.function with jit_compile. Defaults: torch eager, "
                     "TensorFlow compiled. Compile time is how much longer the first step took than a steady "
                     "one (tracing, compiling, first collectives); it is not in the throughput.</p>")
    deployments = data.get("deployment") or []
    if deployments:
        parts.append("<h2>Deployment exports</h2>")
        parts.append(f"<div class=plots><figure>{plots.deployment_svg(deployments)}</figure></div>")
        body = []
        for d in deployments:
            for m in d["models"]:
                file = _link(f"{d['dir']}/{m['file']}", m["file"]) if m["file"] else "(trained model)"
                body.append([d["label"], m["format"], m["runtime"], _Raw(file),
                             f"{m['bytes'] / 1024:.1f} KiB" if m["bytes"] else None, fmt(m["accuracy"]),
                             f"{100 * m['accuracy_delta']:+.2f} pt" if m["accuracy_delta"] is not None else None,
                             fmt(m["agreement"], pct=True) if m["agreement"] is not None else None,
                             f"{1000 * m['latency_ms_p50']:.1f} µs", f"{1000 * m['latency_ms_p90']:.1f} µs",
                             f"{m['export_s']:.1f} s" if m["export_s"] is not None else None])
        parts.append(_table(["arm", "format", "runtime", "file", "size", "test accuracy", "vs trained",
                             "same class as trained", "latency p50", "latency p90", "export time"], body))
        parts.append(f"<p class=note>Each arm's model, exported after its first trial, loaded by its own runtime "
                     f"with the trial's threads and run on {escape(exports_evaluated_on(deployments))}. PyTorch: torch.export to ONNX, run by onnxruntime. TensorFlow: TF Lite, "
                     "float and dynamic-range quantised (int8 weights), run by LiteRT.</p>")
    board = data.get("tensorboard") or {}
    if board.get("runs"):
        parts.append("<h2>TensorBoard</h2>")
        parts.append("<p>Every trial wrote TensorBoard event files: loss, step time and throughput per step, and "
                     "the model graph (torch: <code>add_graph</code>; TensorFlow: the traced tf.function). See them "
                     "with <code>tensorboard --logdir tensorboard</code> run in this report's directory.</p>")
        parts.append(_table(
            ["trial", "workers", "event files", "scalars (points)", "graph nodes"],
            [[r["label"], r["workers"], _Raw(_link(r["logdir"] + "/", r["logdir"])),
              r["error"] or ", ".join(f"{k} ({v})" for k, v in r["scalars"].items()), r["graph_nodes"]]
             for r in board["runs"]],
        ))
    loc = data.get("lines_of_code") or []
    if loc:
        parts.append("<h2>Lines of code in the training step</h2>")
        parts.append(f"<div class=plots><figure>{plots.loc_svg(loc)}</figure></div>")
        parts.append(_table(["framework", "lines", "functions", "source", "workloads"],
                            [[e["framework"], e["lines"], ", ".join(f"{k} ({v})" for k, v in e["functions"].items()),
                              e["source"], ", ".join(e["workloads"])] for e in loc]))
        parts.append("<p class=note>Counted from the source: the code that runs every step, with comments, "
                     "blank lines and docstrings left out. Both frameworks' steps serve every strategy they "
                     "support (TensorFlow's includes its Horovod gradient average and global-batch loss).</p>")
    return parts


class _Raw(str):
    """Markup built here from escaped parts: not escaped again."""


def _table(header: list[str], body: list[list]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    lines = [f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>"]
    for row in body:
        cells = "".join(
            f"<td>{v}</td>" if isinstance(v, _Raw)
            else f"<td class=n>{escape(str(v))}</td>" if isinstance(v, (int, float)) else f"<td>{escape(_text(v))}</td>"
            for v in row
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def _text(value) -> str:
    return "–" if value is None else str(value)
