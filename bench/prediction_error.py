"""Prediction error of the scaling models on real sweeps: for every curve of every results file given, fit
on all measured worker counts but one and predict the one left out (each in turn).

    .venv/bin/python bench/prediction_error.py bench/results/fit-sweep.jsonl [more results.jsonl ...]

Writes bench/results/prediction-error.json and .md. Not a test: it reports numbers, it asserts nothing.
"""

import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.measuring import results  # noqa: E402
from orchestrator.modelling import fit, scaling


def held_out_errors(lines: list[dict]) -> list[dict]:
    """Per curve (orchestrator.modelling.scaling, the latest record of each trial), each measured count held out in turn."""
    out = []
    for curve in scaling.curves(results.latest(lines).ok):
        rows = curve.records
        counts = sorted({r.workers for r in rows})
        for held in counts:
            train = [r for r in rows if r.workers != held]
            if len({r.workers for r in train}) < 2:
                continue
            model = fit.fit_points([r.workers for r in train], [scaling.rate(r, curve.metric) for r in train],
                                   scaling=curve.scaling)
            measured = float(np.mean([scaling.rate(r, curve.metric) for r in rows if r.workers == held]))
            predicted = model.predict(held)
            low, high = model.band(held)
            out.append({
                "framework": curve.framework, "strategy": curve.strategy, "workload": curve.workload,
                "arm": curve.name, "unit": curve.unit, "held_out_workers": held,
                "fitted_on": sorted({r.workers for r in train}), "model": model.model,
                "measured": measured, "predicted": predicted, "relative_error": (predicted - measured) / measured,
                "inside_band": low <= measured <= high, "extrapolation": held > max(r.workers for r in train),
            })
    return out


def main(paths: list[str]) -> None:
    rows = []
    for path in paths:
        lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        rows += [{"source": path, **row} for row in held_out_errors(lines)]
    errors = [abs(r["relative_error"]) for r in rows]
    summary = {
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "cpus": __import__("os").cpu_count()},
        "points": len(rows),
        "median_abs_error": float(np.median(errors)) if errors else None,
        "mean_abs_error": float(np.mean(errors)) if errors else None,
        "inside_band": sum(r["inside_band"] for r in rows),
        "rows": rows,
    }
    out = ROOT / "bench/results"
    (out / "prediction-error.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["# Scaling-model prediction error (held out one measured count at a time)", "",
             f"`{' '.join(['bench/prediction_error.py', *paths])}` on {summary['machine']['cpus']} CPUs.", "",
             "| source | curve | held out | fitted on | model | measured | predicted | error | in band |",
             "|---|---|---:|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {Path(r['source']).name} | {r['framework']} {r['strategy']} | {r['held_out_workers']} | "
                     f"{', '.join(map(str, r['fitted_on']))} | {r['model']} | {r['measured']:,.0f} | {r['predicted']:,.0f} | "
                     f"{100 * r['relative_error']:+.1f}% | {'yes' if r['inside_band'] else 'no'} |")
    if errors:
        lines += ["", f"Median absolute error {100 * summary['median_abs_error']:.1f}%, mean {100 * summary['mean_abs_error']:.1f}%, "
                  f"{summary['inside_band']} of {len(rows)} measured values inside the 10–90% band."]
    (out / "prediction-error.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:] or ["bench/results/fit-sweep.jsonl"])
