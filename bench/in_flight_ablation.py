"""The physical model with gloo's calls in flight set to 1 (one after another) and to 2 (ProcessGroupGloo's two
worker threads, the model's default), side by side on the same records: prediction_scale.py's 2 MiB cases
(bench/runs/scale/comm-bound-*), fitted and predicted as that bench does (the what-if through the model's own
functions, equal to `orchestrator recommend --bandwidth RATE --measured-link 200mbit`).

    .venv/bin/python bench/in_flight_ablation.py

Writes bench/results/in-flight-ablation.json; asserts nothing. Needs the sweeps of bench/prediction_scale.py.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from orchestrator.job import rates  # noqa: E402
from orchestrator.measuring import results  # noqa: E402
from orchestrator.modelling import physics, scaling  # noqa: E402
from prediction_scale import FIT_RATE, RATES, RUNS  # noqa: E402

CASES = ("comm-bound-1pn", "comm-bound-2pn")


def errors(in_flight: int) -> list[dict]:
    physics.IN_FLIGHT["gloo"] = in_flight
    rows = []
    for case in CASES:
        (curve,) = scaling.curves(results.load(RUNS / case / "fit").ok)
        model = physics.fit_curve(curve)
        for rate in RATES:
            what_if = model.with_layout(physics.Layout(inter_node_bps=rates.parse(rate, "rate"),
                                                       measured_link_bps=rates.parse(FIT_RATE, "rate")))
            for r in results.load(RUNS / case / f"held-{rate}").ok:
                measured = scaling.rate(r, curve.metric)
                rows.append({"case": case, "workers": r.workers, "rate": rate, "measured": measured,
                             "predicted": what_if.predict(r.workers),
                             "error": what_if.predict(r.workers) / measured - 1})
    return rows


def main() -> None:
    out = {}
    for n in (1, 2):
        rows = errors(n)
        values = [abs(r["error"]) for r in rows]
        out[f"in_flight_{n}"] = {"median_error": statistics.median(values), "max_error": max(values), "points": rows}
        print(f"gloo calls in flight {n}: median {statistics.median(values):.1%}, max {max(values):.1%} "
              f"({len(rows)} held-out points)")
    (ROOT / "bench/results/in-flight-ablation.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
