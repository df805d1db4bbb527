"""CSV (one row per curve point) and Markdown renderings of the report data."""

from __future__ import annotations

import csv
import io

from orchestrator.measuring.results import UNITS

BREAKDOWN_COLUMNS = (
    "input_ms", "compute_ms", "exposed_comm_ms", "wait_ms", "other_ms", "ring_bound_ms", "allreduce_ms",
    "overlap_fraction", "busbw_peak_gb_per_s", "alpha_us",
)
CSV_COLUMNS = (
    "framework", "strategy", "execution", "workload", "workers", "repeats", "metric", "throughput", "throughput_std",
    "speedup", "efficiency", "efficiency_std", "step_time_mean_s", "test_accuracy", *BREAKDOWN_COLUMNS,
)


def rows(data: dict):
    parts = {(b["name"], b["workers"]): b for b in (data.get("breakdown") or {}).get("rows", [])}
    for curve in data["curves"]:
        for point in curve["points"]:
            found = parts.get((curve.get("name"), point["workers"]), {})
            yield {**{k: curve.get(k) for k in ("framework", "strategy", "execution", "workload", "label")}, **point,
                   **{k: found.get(k) for k in BREAKDOWN_COLUMNS}}


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


def unit(metric: str) -> str:
    return UNITS[metric]


def step_name(metric: str) -> str:
    """What one "step" of a curve is: a user function without a sample count is timed between its reports."""
    return "report interval" if metric == "reports_per_sec" else "step"


def comparison_sentences(data: dict) -> list[str]:
    out = []
    for c in data["comparisons"]:
        a, b = c["curves"]
        if c["throughput_ratio"] is not None:
            speed = f"{c['faster']} is {c['throughput_ratio']:.2f}x the throughput of {c['slower']}"
        else:
            speed = f"throughputs of {a} and {b} are not compared ({c['throughput_not_compared']})"
        if c["efficiency_gap"] is not None:
            scale = f"{c['better_scaling']} scales better by {100 * c['efficiency_gap']:.1f} efficiency points"
        else:
            scale = f"efficiencies are not compared ({c['efficiency_not_compared']})"
        out.append(f"At {c['workers']} worker(s), {speed}; {scale}.")
    return out


def efficiency_footer(data: dict) -> str:
    """How efficiency is defined for the curves shown, each with its own baseline."""
    formulas = sorted({c["efficiency_formula"] for c in data["curves"]})
    if len(formulas) <= 1:
        return "Efficiency = " + (formulas[0] if formulas else "X(N) / (N · X(1))") + "."
    per_curve = "; ".join(f"{c['label']}: {c['efficiency_formula']}" for c in data["curves"])
    return f"Efficiency is relative to each curve's smallest measured count: {per_curve}."


def trial_counts(data: dict) -> str:
    t = data["trials"]
    text = f"{t['ok']} trial(s) measured, {t['failed']} failed."
    if t.get("superseded"):
        text += (f" {t['superseded']} older record(s) of trials run again are left out (kept in results.jsonl; "
                 "the latest record of each trial counts).")
    if t.get("stale"):
        points = ", ".join(f"{s['arm']} at {s['workers']} worker(s), repeat {s['repeat']}" for s in t["stale"])
        text += (f" Stale, left out of every curve, efficiency, fit and verdict: {points}: measured under an earlier "
                 "version of the job (its curve's latest trial ran another plan); the next `orchestrator sweep` of "
                 "the job with this --out measures them again.")
    if t.get("torn_lines"):
        text += (f" Line(s) {', '.join(str(n) for n in t['torn_lines'])} of results.jsonl are not JSON (a write cut "
                 "off by a killed process) and were skipped; a trial no other line records runs again on the next "
                 "sweep.")
    return text


def launcher_lines(data: dict) -> list[str]:
    """Per arm: the launcher its trials used and why, and where repeats reused their worker processes."""
    arms: dict[str, list[dict]] = {}
    for s in data["settings"]:
        arms.setdefault(s["label"], []).append(s)
    lines = []
    for label, sizes in arms.items():
        launcher = sizes[0].get("launcher") or "ray_train"
        why = sizes[0].get("launcher_reason")
        text = f"{label}: launcher {launcher}" + (f": {why}" if why else "")
        reused = [s for s in sizes if s.get("processes") is not None and s["processes"] < s["trials"]]
        if reused:
            text += "; worker processes reused across repeats: " + ", ".join(
                f"{s['trials']} trials in {s['processes']} set(s) at {s['workers']} worker(s)" for s in reused)
        fresh = next((s["fresh_processes_why"] for s in sizes if s.get("fresh_processes_why")), None)
        if fresh and not reused:
            text += f"; each repeat in fresh worker processes: {fresh}"
        lines.append(text + ".")
    return lines


def markdown(data: dict) -> str:
    lines = [f"# Scaling report: {_md(data['job'])}", ""]
    lines.append(f"{trial_counts(data)} Throughput excludes warm-up; ± is the standard deviation over repeats.")
    lines.append("")
    lines += [f"- {_md(note)}" for note in data.get("unit_notes") or []]
    lines += [f"- {_md(s)}" for s in comparison_sentences(data)]
    if data["comparisons"]:
        lines.append("")
    lines += ["| framework | strategy | execution | workload | workers | repeats | throughput | ± | speedup | efficiency | test accuracy |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows(data):
        lines.append(
            f"| {_md(r['framework'])} | {_md(r['strategy'])} | {_md(r['execution'] or '–')} | {_md(r['workload'])} | {r['workers']} | {r['repeats']} "
            f"| {fmt(r['throughput'])} {unit(r['metric'])} | {fmt(r['throughput_std'])} | {r['speedup']:.2f} "
            f"| {fmt(r['efficiency'], pct=True)} | {fmt(r['test_accuracy'])} |"
        )
    shared = sorted({f"{s['label']} at {s['workers']}" for s in data["settings"] if s["shares_cores"]})
    if shared:
        lines += ["", f"Workers share cores in: {_md('; '.join(shared))}. There, throughput measures contention "
                  "as much as scaling."]
    launched = launcher_lines(data)
    if launched:
        lines += ["", *[f"- {_md(line)}" for line in launched]]
    lines += breakdown_markdown(data)
    lines += recommendation_markdown(data)
    lines += target_markdown(data)
    lines += cost_markdown(data)
    lines += beyond_speed_markdown(data)
    lines += sweep_time_markdown(data)
    recoveries = recovery_lines(data)
    if recoveries:
        lines += ["", "## Recovered from failures", "", *[f"- {_md(line)}" for line in recoveries]]
    if data["failed_trials"]:
        lines += ["", "## Failed trials", ""]
        lines += [f"- `{_md(f['trial_id'])}`: {_md(f['error'])}" for f in data["failed_trials"]]
    lines += ["", f"{efficiency_footer(data)} Rendered from results.jsonl by `orchestrator report` "
              f"(orchestrator {data.get('orchestrator_version', '?')}; records by {', '.join(data.get('recorded_by') or ['?'])}).", ""]
    return "\n".join(lines)


def sweep_time_table(data: dict) -> tuple[list[str], list[list]]:
    """Where the sweep's time went, per curve and worker count (seconds over its trials)."""
    t = data.get("sweep_time")
    if not t:
        return [], []
    header = ["curve", "workers", "trials", "to step 1", "training", "after training", "of which breakdown",
              "of which exports", "training share"]

    def s(value: float) -> str:
        return f"{value:.1f} s"

    body = []
    for r in t["rows"]:
        whole = r["to_first_step_s"] + r["training_s"] + r["after_training_s"]
        body.append([r["label"], r["workers"], r["trials"], s(r["to_first_step_s"]), s(r["training_s"]),
                     s(r["after_training_s"]), s(r["breakdown_s"]) if r["breakdown_s"] else "–",
                     s(r["export_s"]) if r["export_s"] else "–",
                     fmt(r["training_s"] / whole, pct=True) if whole else "–"])
    return header, body


def sweep_time_markdown(data: dict) -> list[str]:
    t = data.get("sweep_time")
    if not t:
        return []
    header, body = sweep_time_table(data)
    lines = ["", "## Where the sweep's time went", "", _md(t["sentence"]), ""]
    lines += [f"- {_md(note)}" for note in t.get("notes") or []]
    if t.get("notes"):
        lines.append("")
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(_md(str(cell)) for cell in row) + " |" for row in body]
    return lines


def breakdown_table(data: dict) -> tuple[list[str], list[list]]:
    """The step breakdown as a header and rows of text, for Markdown and HTML alike."""
    header = ["curve", "workers", "input", "compute", "exposed comm.", "wait", "other", "step", "all-reduce alone",
              "ring bound", "overlap", "bus bandwidth (best point)", "backend"]

    def ms(value):
        return "–" if value is None else f"{value:.3f} ms"

    body = []
    for r in (data.get("breakdown") or {}).get("rows", []):
        flagged = " (parts exceed it)" if r.get("parts_exceed_step") else ""
        body.append([r["label"], r["workers"], ms(r.get("input_ms")), ms(r.get("compute_ms")),
                     ms(r.get("exposed_comm_ms")), ms(r.get("wait_ms")), ms(r.get("other_ms")),
                     ms(r.get("step_ms")) + flagged,
                     ms(r.get("allreduce_ms")), ms(r.get("ring_bound_ms")),
                     fmt(r.get("overlap_fraction"), pct=True),
                     (f"{r['bus_gb_per_s']:.3f} GB/s ({r['busbw_peak_gb_per_s']:.3f})" if r.get("bus_gb_per_s")
                      else "–"),
                     r.get("backend") or "–"])
    return header, body


BREAKDOWN_NOTE = ("Per step, from blocks of steps with and without the gradient all-reduce run after the timed "
                  "steps (the model is restored after them): input = fetching the batch; compute = forward, "
                  "backward and optimiser without the all-reduce; wait = time a rank waits for the slowest; "
                  "exposed communication = what the all-reduce adds beyond that; other = the timed steps' median "
                  "step beyond their sum (negative where a training step took less than its parts timed apart: it "
                  "can overlap them, and the blocks run at another moment). All-reduce "
                  "alone = the gradient's all-reduce in the microbenchmark (alpha + W, W = 2(n−1)/n · S / B; over gloo's "
                  "pipelined ring max(alpha + W/2, W); fitted once: B "
                  "from the slope over messages of 64 KiB and up, alpha from the smaller ones); ring bound = "
                  "2(n−1)/n · S / B (nccl-tests' busbw = algbw · 2(n−1)/n; the best single point's in brackets); "
                  "overlap = 1 − exposed / all-reduce alone.")


def breakdown_markdown(data: dict) -> list[str]:
    section = data.get("breakdown") or {}
    header, body = breakdown_table(data)
    if not body and not section.get("notes"):
        return []
    lines = ["", "## Why it scales as it does", ""]
    lines += [f"- {_md(s)}" for s in section.get("sentences", [])]
    lines += [f"- {_md(n)}" for n in section.get("notes", [])]
    if body:
        lines += ["", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 2) + "---|"]
        lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in body]
        lines += ["", _md(BREAKDOWN_NOTE)]
    return lines


def beyond_speed_markdown(data: dict) -> list[str]:
    lines = []
    rows = (data.get("execution") or {}).get("rows") or []
    if rows:
        lines += ["", "## Graph vs eager execution", "",
                  "| framework | strategy | workers | execution | throughput | vs default | compile time |",
                  "|---|---|---:|---|---:|---:|---:|"]
        for r in rows:
            ratio = f"{r['vs_default']:.2f}x" if r["vs_default"] else "–"
            compile_s = f"{r['compile_s']:.2f} s" if r["compile_s"] is not None else "–"
            lines.append(f"| {_md(r['framework'])} | {_md(r['strategy'])} | {r['workers']} | {r['execution']} "
                         f"| {fmt(r['throughput'])} {unit(r['metric'])} | {ratio} | {compile_s} |")
    deployments = data.get("deployment") or []
    if deployments:
        lines += ["", "## Deployment exports", "",
                  "| arm | format | runtime | file | size | test accuracy | vs trained | latency p50 |",
                  "|---|---|---|---|---:|---:|---:|---:|"]
        for d in deployments:
            for m in d["models"]:
                file = f"`{d['dir']}/{m['file']}`" if m["file"] else "(trained model)"
                size = f"{m['bytes'] / 1024:.1f} KiB" if m["bytes"] else "–"
                delta = f"{100 * m['accuracy_delta']:+.2f} pt" if m["accuracy_delta"] is not None else "–"
                lines.append(f"| {_md(d['label'])} | {m['format']} | {_md(m['runtime'])} | {_md(file)} | {size} "
                             f"| {fmt(m['accuracy'])} | {delta} | {1000 * m['latency_ms_p50']:.1f} µs |")
        lines += ["", f"Each arm's model, exported after its first trial, run by its own runtime on "
                      f"{exports_evaluated_on(deployments)}."]
    runs = (data.get("tensorboard") or {}).get("runs") or []
    if runs:
        lines += ["", "## TensorBoard", "",
                  f"{len(runs)} trial(s) wrote event files (loss, step time, throughput per step; the model graph): "
                  "`tensorboard --logdir tensorboard` in this directory."]
    loc = data.get("lines_of_code") or []
    if loc:
        lines += ["", "## Lines of code in the training step", "", "| framework | lines | functions | source |",
                  "|---|---:|---|---|"]
        for e in loc:
            functions = ", ".join(f"{k} ({v})" for k, v in e["functions"].items())
            lines.append(f"| {e['framework']} | {e['lines']} | {functions} | `{e['source']}` |")
    return lines


def layout_phrase(layout: dict | None) -> str:
    """A what-if layout as words: '8 workers per node, 100 Gbit/s between nodes'."""
    from orchestrator.job.rates import show

    if not layout:
        return ""
    parts = []
    if layout.get("workers_per_node"):
        parts.append(f"{layout['workers_per_node']} worker(s) per node")
    if layout.get("inter_node_bps"):
        parts.append(f"{show(layout['inter_node_bps'])} between nodes")
    if layout.get("intra_node_bps"):
        parts.append(f"{show(layout['intra_node_bps'])} within a node")
    if layout.get("measured_link_bps"):
        parts.append(f"measured over {show(layout['measured_link_bps'])} links")
    return ", ".join(parts)


def model_phrase(fitted: dict) -> str:
    """Which model, and for the physical one what its step is made of at the recommended count."""
    if fitted["model"] != "physical":
        return f"Model {fitted['model']}"
    parts = fitted.get("parts_at_recommended") or {}
    algorithms = "/".join((fitted.get("params") or {}).get("algorithms") or ["ring"])
    text = f"Model physical ({(fitted.get('params') or {}).get('backend') or 'unknown backend'}: {algorithms})"
    if parts:
        text += (f": a step of {parts['step_ms']:.2f} ms, local compute and input {parts['local_ms']:.2f} ms, "
                 f"wait {parts['wait_ms']:.2f} ms, all-reduce {parts['comm_ms']:.2f} ms "
                 f"({parts['exposed_comm_ms']:.2f} ms exposed)")
        if parts.get("bus_gb_per_s"):
            text += f" at {parts['bus_gb_per_s']:.3g} GB/s bus bandwidth"
    if fitted.get("assumptions"):
        text += " (assumed: " + "; ".join(fitted["assumptions"]) + ")"
    return text


def recommendation_lines(data: dict) -> list[str]:
    threshold = data["recommend_settings"]["threshold"]
    out = []
    for rec, fitted in zip(data["recommendations"], data["fits"]):
        out.append(
            f"{rec['label']}: {rec['workers']} worker(s) keep predicted efficiency "
            f"≥ {100 * threshold:.0f}% ({100 * rec['predicted_efficiency']:.0f}%"
            + (f" of {rec['baseline_workers']}-worker scaling" if rec.get("baseline_workers", 1) != 1 else "")
            + f", about {fmt(rec['predicted_throughput'])} {rec.get('unit', 'samples/s')}, "
            f"band {fmt(rec['band'][0])}–{fmt(rec['band'][1])}"
            + (", the measurements' spread, not a bound on model error" if rec.get("model") == "physical" else "")
            + f"); knee at {rec['knee']}, "
            f"peak at {rec['peak']}. "
            + (f"Capped: the counts considered stop at {rec.get('largest_count', rec['max_workers'])} ("
               + (f"{rec['counts_rule']}, up to " if rec.get("counts_rule") else "")
               + f"{rec['max_workers']}: --max-workers, else 4x the largest measured and at least 16), and "
               "efficiency is still above the threshold there. " if rec.get("capped") else "")
            + model_phrase(fitted)
            + f", fit R² {fitted['r2']:.3f}"
            + (f", leave-one-out error {100 * fitted['loo_error']:.1f}%" if fitted["loo_error"] is not None else "")
            + f"; measured at {', '.join(map(str, fitted['measured_workers']))}."
            + (" The model fits these measurements worse than their mean does (its RMS error over 1.1× the mean's), "
               "so its predictions and this count are not borne out by them: measure more worker counts "
               "(sweep.workers) or more repeats."
               if fitted.get("fit_below_mean") else "")
        )
    asked = (data.get("recommend_settings") or {}).get("layout") or {}
    asked = any(asked.get(k) for k in ("workers_per_node", "inter_node_bps", "intra_node_bps"))
    for rec in data["recommendations"]:
        answer = rec.get("what_if")
        if not answer:
            if asked:
                out.append(f"What-if for {rec['label']}: not applied: its trials carry no step breakdown with a "
                           "measured all-reduce, which the physical model needs.")
            continue
        if answer.get("changes_nothing"):
            out.append(f"What-if for {rec['label']} ({layout_phrase(answer['layout'])}): not applied, it would change "
                       f"no number: {answer['changes_nothing']}.")
            continue
        out.append(
            f"What-if for {rec['label']} ({layout_phrase(answer['layout'])}; physical model): "
            f"{answer['workers']} worker(s) keep predicted efficiency ≥ {100 * threshold:.0f}% "
            f"({100 * answer['predicted_efficiency']:.0f}%, about {fmt(answer['predicted_throughput'])} "
            f"{rec.get('unit', 'samples/s')}); knee at {answer['knee']}"
            + (", capped at the largest count considered" if answer.get("capped") else "")
            + ". Assumed: " + ("; ".join(answer["assumptions"]) or "nothing beyond the measurements")
            + ". The measured recommendation above is what train and k8s render --from-report use."
        )
    for arm in data.get("adaptive") or []:
        out.append(
            f"Adaptive sweep, {arm['label']}: measured {', '.join(map(str, arm['workers_measured']))} "
            f"worker(s) in {arm['trials_run']} of {arm['planned_trials']} planned trials ({arm['trials_saved']} saved)."
        )
    verdict = data.get("verdict")
    left_out = (f" Not ranked, its model fitting its measurements worse than their mean does: "
                f"{', '.join(verdict['left_out'])}." if verdict and verdict.get("basis") and verdict.get("left_out")
                else "")
    if verdict and verdict.get("basis") == "throughput":
        out.append(
            f"Best: {verdict['best']} at {verdict['workers']} worker(s), {verdict['ratio']:.2f}x the "
            f"predicted throughput of {verdict['versus']} at its own {verdict['versus_workers']}." + left_out
        )
    elif verdict and verdict.get("basis") == "speedup":
        out.append(
            f"Best scaling: {verdict['best']} at {verdict['workers']} worker(s), predicted {verdict['best_value']:.2f}x "
            f"its own {verdict['baseline_workers']}-worker throughput, against {verdict['versus_value']:.2f}x for "
            f"{verdict['versus']} at its own {verdict['versus_workers']}. Throughputs are not ranked: {verdict['reason']}."
            + left_out
        )
    elif verdict:
        out.append(f"No curve is ranked best: {verdict['reason']}.")
    return out


def exports_evaluated_on(deployments: list[dict]) -> str:
    """What the exports' accuracy and latency were measured on, for the deployment section's note."""
    first = deployments[0]
    dataset, samples = first.get("dataset"), first.get("test_samples")
    if samples:
        return f"the {dataset + ' ' if dataset else ''}test split ({samples} samples) and on single samples"
    if samples == 0:
        return (f"single samples only: {'the ' + dataset + ' dataset' if dataset else 'the dataset'} has no test "
                "split, so there is no accuracy to compare")
    return "the test split and on single samples"


def duration_text(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def target_table(data: dict) -> tuple[list[str], list[list]]:
    rows_ = (data.get("time_to_target") or {}).get("rows") or []
    header = ["curve", "workers", "target", "reached", "time to target", "steps", "samples", "speedup",
              "statistical efficiency"]
    body = [[r["label"], r["workers"], f"{r['metric']} {r['value']:g}", f"{r['reached']}/{r['trials']}",
             duration_text(r["seconds"]) if r["seconds"] else "–",
             f"{r['steps']:.0f}" + (" reports" if r.get("steps_unit") == "reports" else "") if r["steps"] else "–",
             fmt(r["samples"]) if r["samples"] else "–", f"{r['speedup']:.2f}x" if r.get("speedup") else "–",
             fmt(r.get("statistical_efficiency"), pct=True) if r.get("statistical_efficiency") else "–"]
            for r in rows_]
    return header, body


def target_markdown(data: dict) -> list[str]:
    header, body = target_table(data)
    if not body:
        return []
    lines = ["", "## Time to target", "", "The clock runs from the first data touch to the evaluation that first "
             "meets the target (MLPerf Training's time-to-train); statistical efficiency is samples to target at the "
             "smallest count that reached it over samples to target at N.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(str(c)) for c in row) + " |" for row in body]
    lines += [f"- {_md(n)}" for n in (data.get("time_to_target") or {}).get("notes") or []]
    return lines


def cost_lines(data: dict) -> list[str]:
    priced = data.get("cost")
    if not priced or not priced.get("rows"):
        return [priced["note"]] if priced and priced.get("note") else []
    length = priced["length"]
    what = (f"{length['steps']} steps" if "steps" in length else f"{length['epochs']:g} epochs" if "epochs" in length
            else f"{length['samples']:,} samples, {length['why']}," if "samples" in length else "to the target")
    prices = ", ".join(f"{k} {v:g}/h" for k, v in sorted(priced["prices"].items()))
    out = [f"Training {what} at {prices}:"]
    for answer in priced["answers"]:
        cheap, fast = answer["cheapest_within_deadline"], answer["fastest_within_budget"]
        deadline = f" within {duration_text(priced['deadline_s'])}" if priced.get("deadline_s") else ""
        budget = f" within a budget of {priced['budget']:g}" if priced.get("budget") is not None else ""
        text = f"{answer['label']}: cheapest{deadline}: "
        text += (f"{cheap['workers']} worker(s), {duration_text(cheap['seconds'])} for {cheap['cost']:.4g}" if cheap
                 else "no size meets the deadline")
        text += f"; fastest{budget}: "
        text += (f"{fast['workers']} worker(s), {duration_text(fast['seconds'])} for {fast['cost']:.4g}" if fast
                 else "no size fits the budget")
        out.append(text + ".")
    return out


def cost_table(data: dict) -> tuple[list[str], list[list]]:
    priced = data.get("cost") or {}
    header = ["curve", "workers", "time to train", "per hour", "cost", "measured"]
    body = [[r["label"], r["workers"], duration_text(r["seconds"]), f"{r['cost_per_hour']:.4g}", f"{r['cost']:.4g}",
             "yes" if r["measured"] else "predicted"] for r in priced.get("rows") or []]
    return header, body


def cost_markdown(data: dict) -> list[str]:
    lines = cost_lines(data)
    if not lines:
        return []
    out = ["", "## What each size costs", "", *[f"- {_md(line)}" for line in lines]]
    header, body = cost_table(data)
    if body:
        out += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(_md(str(c)) for c in row) + " |" for row in body]
    return out


def recommendation_markdown(data: dict) -> list[str]:
    lines = recommendation_lines(data)
    if not lines:
        return []
    return ["", "## How many workers is it worth?", "", *[f"- {_md(line)}" for line in lines],
            "", "Predictions beyond the measured counts are extrapolations of the fitted model; "
            "the band is the 10th–90th percentile of a bootstrap over repeats."]


def recovery_lines(data: dict) -> list[str]:
    out = []
    for trial in data.get("recovered_trials") or []:
        for event in trial["events"]:
            recovery = event.get("recovery_s")
            out.append(
                f"{trial['trial_id']} lost a worker after step {event.get('last_reported_step')} and resumed from "
                f"the checkpoint at step {event.get('resumed_after_step', '?')}"
                + (f" {recovery:.1f} s later" if recovery is not None else "")
                + "; its throughput counts only the attempt that finished."
            )
    return out
