"""Scaling plots as inline SVG text (matplotlib, Agg-free SVG backend), deterministic byte for byte."""

from __future__ import annotations

import io
import math

from orchestrator.measuring.results import UNITS

COLORS = {"torch": ("#d62728", "#ff7f0e", "#8c564b"), "tensorflow": ("#1f77b4", "#17becf", "#2ca02c")}
MARKERS = ("o", "s", "^", "D")



def _style(curves: list[dict]) -> dict[int, tuple[str, str]]:
    counts: dict[str, int] = {}
    styles = {}
    for index, curve in enumerate(curves):
        palette = COLORS.get(curve["framework"], ("#7f7f7f", "#bcbd22", "#e377c2"))
        k = counts.get(curve["framework"], 0)
        counts[curve["framework"]] = k + 1
        styles[index] = (palette[k % len(palette)], MARKERS[k % len(MARKERS)])
    return styles


def _svg(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype for inlining


def _figure_setup():
    import matplotlib

    matplotlib.use("svg", force=False)
    matplotlib.rcParams.update({"svg.hashsalt": "orchestrator-report", "svg.fonttype": "none", "font.size": 10})


def _figure():
    _figure_setup()
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.0))


def _fit_for(curve: dict, fits: list[dict]):
    return next((f for f in fits if f.get("name") == curve.get("name") and f["workload"] == curve["workload"]), None)


def _label(curve: dict) -> str:
    return curve.get("label") or f"{curve['framework']} {curve['strategy']}"


def throughput_svg(curves: list[dict], fits: list[dict] = ()) -> str:
    figure, axes = _figure()
    styles = _style(curves)
    units = set()
    for index, curve in enumerate(curves):
        color, marker = styles[index]
        fitted = _fit_for(curve, fits)
        if fitted:
            shown = [p for p in fitted["predicted"] if p["workers"] <= _horizon(curves)]
            xs = [p["workers"] for p in shown]
            axes.plot(xs, [p["throughput"] for p in shown], color=color, linestyle="--", linewidth=1,
                      label=f"{_label(curve)} ({fitted['model']} fit)")
            axes.fill_between(xs, [p["low"] for p in shown], [p["high"] for p in shown], color=color, alpha=0.12, linewidth=0)
            if fitted.get("what_if"):  # beside the measured model's line, never in its place
                other = [p for p in fitted["what_if"]["predicted"] if p["workers"] <= _horizon(curves)]
                axes.plot([p["workers"] for p in other], [p["throughput"] for p in other], color=color,
                          linestyle=":", linewidth=1.5, label=f"{_label(curve)} (what-if, physical)")
        xs = [p["workers"] for p in curve["points"]]
        ys = [p["throughput"] for p in curve["points"]]
        errs = [p["throughput_std"] or 0.0 for p in curve["points"]]
        axes.errorbar(xs, ys, yerr=errs, color=color, marker=marker, capsize=3,
                      label=_label(curve))
        units.add(UNITS[curve["metric"]])
    if len(units) > 1:
        raise ValueError(f"one throughput axis per unit, got {sorted(units)}")
    axes.set_xlabel("workers")
    axes.set_ylabel(units.pop() if units else "throughput")
    axes.set_title("Throughput vs workers (mean ± std over repeats)")
    _integer_ticks(axes, curves)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend()
    return _svg(figure)


def efficiency_svg(curves: list[dict], fits: list[dict] = ()) -> str:
    figure, axes = _figure()
    styles = _style(curves)
    all_workers = sorted({p["workers"] for c in curves for p in c["points"]})
    span = [1, _horizon(curves)] if fits else all_workers
    axes.plot(span, [1.0] * len(span), color="#444444", linestyle=":", label="ideal (linear)")
    for index, curve in enumerate(curves):
        color, marker = styles[index]
        fitted = _fit_for(curve, fits)
        if fitted:
            shown = [p for p in fitted["predicted"] if p["workers"] <= _horizon(curves)]
            axes.plot([p["workers"] for p in shown], [p["efficiency"] for p in shown], color=color,
                      linestyle="--", linewidth=1)
        xs = [p["workers"] for p in curve["points"]]
        ys = [p["efficiency"] for p in curve["points"]]
        errs = [p["efficiency_std"] or 0.0 for p in curve["points"]]
        axes.errorbar(xs, ys, yerr=errs, color=color, marker=marker, capsize=3,
                      label=_label(curve))
    axes.set_xlabel("workers")
    formulas = {c.get("efficiency_formula") or "X(N) / (N · X(1))" for c in curves}
    axes.set_ylabel(f"efficiency = {formulas.pop()}" if len(formulas) == 1
                    else "efficiency, each vs its smallest count")
    axes.set_title("Scaling efficiency vs workers")
    _integer_ticks(axes, curves)
    axes.set_ylim(0, max(1.1, max((p["efficiency"] for c in curves for p in c["points"]), default=1) * 1.1))
    axes.grid(alpha=0.3)
    axes.legend()
    return _svg(figure)


def _horizon(curves: list[dict]) -> int:
    """Predictions are drawn to twice the largest measured count (at least 8)."""
    return max(8, 2 * max(p["workers"] for c in curves for p in c["points"]))


def _integer_ticks(axes, curves):
    ticks = sorted({p["workers"] for c in curves for p in c["points"]})
    if ticks:
        axes.set_xticks(sorted(set(ticks) | {_horizon(curves)}))


PART_COLORS = {"compute_ms": "#4c72b0", "exposed_comm_ms": "#c44e52", "input_ms": "#55a868", "wait_ms": "#8172b2",
               "other_ms": "#cccccc"}
PART_NAMES = {"compute_ms": "compute", "exposed_comm_ms": "exposed communication", "input_ms": "input",
              "wait_ms": "wait", "other_ms": "other (timed step beyond the parts)"}


def breakdown_svg(rows: list[dict]) -> str:
    """Stacked bars: each (curve, workers) step split into its parts, both frameworks side by side."""
    figure, axes = _figure()
    figure.set_size_inches(6.4, max(2.4, 0.45 * len(rows) + 1.2))
    names = [f"{r['label']}, {r['workers']} worker(s)" for r in rows]
    left = [0.0] * len(rows)
    for part, color in PART_COLORS.items():
        widths = [max(0.0, r.get(part) or 0.0) for r in rows]
        axes.barh(range(len(rows)), widths, left=left, color=color, label=PART_NAMES[part])
        left = [a + b for a, b in zip(left, widths)]
    for i, r in enumerate(rows):
        if r.get("ring_bound_ms"):
            axes.plot([r["input_ms"] + r["compute_ms"] + r["wait_ms"] + r["ring_bound_ms"]] * 2, [i - 0.4, i + 0.4],
                      color="#222222", linewidth=1.5, linestyle=":")
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels(names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("ms per step (dotted: where the step would end with a ring-bound all-reduce, unhidden)")
    axes.set_title("Where a step's time goes")
    axes.grid(alpha=0.3, axis="x")
    # Beside the bars, not over them: the longest bar runs to the axes' right edge.
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _svg(figure)


def bandwidth_svg(rows: list[dict]) -> str:
    """Bus bandwidth against message size, per (curve, workers), with each gradient's size marked."""
    figure, axes = _figure()
    for index, r in enumerate(rows):
        palette = COLORS.get(r["framework"], ("#7f7f7f", "#bcbd22", "#e377c2"))
        color, marker = palette[index % len(palette)], MARKERS[index % len(MARKERS)]
        points = r["collective"]["points"]
        axes.plot([p["bytes"] for p in points], [p["busbw_gb_per_s"] for p in points], color=color, marker=marker,
                  label=f"{r['label']}, {r['workers']} worker(s) ({r.get('backend') or '?'})")
        if r.get("gradient_bytes"):
            axes.axvline(r["gradient_bytes"], color=color, linestyle=":", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("message size (bytes; dotted: the gradient)")
    axes.set_ylabel("bus bandwidth, GB/s (algbw · 2(n−1)/n)")
    axes.set_title("All-reduce bus bandwidth")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return _svg(figure)


def cost_svg(rows: list[dict], frameworks: dict[str, str]) -> str:
    """Cost against time to train, one line per curve through its worker counts (labelled with N)."""
    figure, axes = _figure()
    by_curve: dict[str, list[dict]] = {}
    for r in rows:
        by_curve.setdefault(r["name"], []).append(r)
    for index, (name, mine) in enumerate(sorted(by_curve.items())):
        palette = COLORS.get(frameworks.get(name, ""), ("#7f7f7f", "#bcbd22", "#e377c2"))
        color, marker = palette[index % len(palette)], MARKERS[index % len(MARKERS)]
        mine = sorted(mine, key=lambda r: r["workers"])
        axes.plot([r["seconds"] / 3600 for r in mine], [r["cost"] for r in mine], color=color, marker=marker,
                  markersize=4, label=mine[0]["label"])
        for r in mine:
            if r["measured"] or r["workers"] in (1, 2, 4, 8, 16, 32, 64):
                axes.annotate(str(r["workers"]), (r["seconds"] / 3600, r["cost"]), fontsize=7,
                              textcoords="offset points", xytext=(3, 3))
    _log_x(axes, [r["seconds"] / 3600 for r in rows])
    axes.set_xlabel("time to train, hours (log; labels: workers)")
    axes.set_ylabel("cost (price units)")
    axes.set_title("Cost against time to train")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return _svg(figure)


EXECUTION_COLORS = {"eager": "#9467bd", "compiled": "#2ca02c", "xla": "#ff7f0e"}


def execution_svg(rows: list[dict]) -> str:
    """Grouped bars: throughput per execution, for each (framework strategy, workers)."""
    groups = sorted({(r["framework"], r["strategy"], r["workers"]) for r in rows})
    modes = [m for m in EXECUTION_COLORS if any(r["execution"] == m for r in rows)]
    figure, (left, right) = _pair()
    width = 0.8 / max(1, len(modes))
    for k, mode in enumerate(modes):
        xs, ys, compile_s = [], [], []
        for i, group in enumerate(groups):
            row = next((r for r in rows if (r["framework"], r["strategy"], r["workers"]) == group and r["execution"] == mode), None)
            if row:
                xs.append(i + (k - (len(modes) - 1) / 2) * width)
                ys.append(row["throughput"])
                compile_s.append(row["compile_s"] or 0.0)
        left.bar(xs, ys, width, color=EXECUTION_COLORS[mode], label=mode)
        right.bar(xs, compile_s, width, color=EXECUTION_COLORS[mode], label=mode)
    names = [f"{f} {s}\n{n} worker(s)" for f, s, n in groups]
    for axes in (left, right):
        axes.set_xticks(range(len(groups)))
        axes.set_xticklabels(names, fontsize=8)
        axes.grid(alpha=0.3, axis="y")
        axes.legend()
    units = {UNITS[r["metric"]] for r in rows}
    left.set_ylabel(" or ".join(sorted(units)))
    left.set_title("Steady-state throughput (warm-up excluded)")
    right.set_ylabel("seconds")
    right.set_title("First step beyond a steady step (tracing, compiling)")
    return _svg(figure)


def deployment_svg(deployments: list[dict]) -> str:
    """Bars per model of each exporting arm: single-sample latency (log scale) and file size."""
    bars = [(f"{d['label']}\n{m['format']}", m) for d in deployments for m in d["models"]]
    figure, (left, right) = _pair()
    names = [name for name, _ in bars]
    colors = [COLORS.get("torch" if d["framework"] == "torch" else "tensorflow")[i % 3]
              for d in deployments for i, _ in enumerate(d["models"])]
    micros = [m["latency_ms_p50"] * 1000 for _, m in bars]
    left.barh(range(len(bars)), micros, color=colors)
    _log_x(left, micros)
    left.set_xlabel("µs per single-sample inference (median)")
    left.set_title("Latency on this CPU")
    sized = [(i, m["bytes"] / 1024) for i, (_, m) in enumerate(bars) if m["bytes"]]
    right.barh([i for i, _ in sized], [kb for _, kb in sized], color=[colors[i] for i, _ in sized])
    right.set_xlabel("KiB")
    right.set_title("Exported file size")
    for axes in (left, right):
        axes.set_yticks(range(len(bars)))
        axes.set_yticklabels(names if axes is left else [], fontsize=8)  # the same rows: named once
        axes.invert_yaxis()
        axes.grid(alpha=0.3, axis="x")
    return _svg(figure)


def _log_x(axes, values: list[float]) -> None:
    """A log x axis labelled in plain numbers at 1-2-5 steps (1, 2, 5 per decade; 1 per decade beyond three
    decades), with no minor labels: matplotlib's own labels the minor ticks of a narrow range on top of
    each other."""
    from matplotlib import ticker

    axes.set_xscale("log")
    axis = axes.xaxis
    positive = [v for v in values if v > 0]
    decades = math.log10(max(positive) / min(positive)) if positive else 0.0
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0,) if decades > 3 else (1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def loc_svg(entries: list[dict]) -> str:
    figure, axes = _figure()
    figure.set_size_inches(6.4, 2.4)
    names = [e["framework"] for e in entries]
    axes.barh(names, [e["lines"] for e in entries], color=[COLORS.get(n, ("#7f7f7f",))[0] for n in names])
    for i, e in enumerate(entries):
        axes.text(e["lines"], i, f" {e['lines']}", va="center")
    axes.set_xlabel("lines of code in the training step (no comments, blank lines or docstrings)")
    axes.invert_yaxis()
    return _svg(figure)


def _pair():
    import matplotlib.pyplot as plt

    _figure_setup()
    return plt.subplots(1, 2, figsize=(12.8, 4.2))
