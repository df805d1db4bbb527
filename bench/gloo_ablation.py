"""The physical model's two gloo terms switched off one at a time, side by side on the same records: every
case of prediction_scale.py (bench/runs/scale/), fitted and predicted as that bench does
(the what-if through the model's own functions, equal to `orchestrator recommend --bandwidth RATE
--measured-link 200mbit`). The terms:

    pipelined ring   gloo's ring keeps one of a chunk's two segments in flight while it reduces the other:
                     a call takes max(alpha + W/2, W) (off: alpha + W, one segment at a time)
    calls in flight  ProcessGroupGloo's two worker threads run two of DDP's buckets at once (off: one)

and, beside them, the host-core queue a hop waits in where ranks share cores: q(k) = (1 + k)/2 (behind half
the other ranks of its core, the model) against k (behind all of them, the model before).

    .venv/bin/python bench/gloo_ablation.py

Writes bench/results/gloo-ablation.json; asserts nothing. Needs the sweeps of bench/prediction_scale.py.
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
from orchestrator.measuring import collective as coll, results  # noqa: E402
from orchestrator.modelling import physics, scaling  # noqa: E402
from prediction_scale import CASES, FIT_RATE, RUNS  # noqa: E402

VARIANTS = {  # name: (gloo's ring pipelined, gloo's calls in flight, a hop's core queue at k ranks a core)
    "neither": (False, 1, "half"),
    "calls in flight only": (False, 2, "half"),
    "pipelined ring only": (True, 1, "half"),
    "both (the model)": (True, 2, "half"),
    "both, core queue k": (True, 2, "all"),
}
QUEUES = {"half": physics.core_queue, "all": lambda k: max(1.0, k or 1.0)}


def errors(pipelined: bool, in_flight: int, queue: str) -> list[dict]:
    saved = coll.PIPELINED, dict(physics.IN_FLIGHT), physics.core_queue
    coll.PIPELINED = ("gloo",) if pipelined else ()
    physics.IN_FLIGHT["gloo"] = in_flight
    physics.core_queue = QUEUES[queue]
    try:
        rows = []
        for case, (_, _, _, case_rates) in CASES.items():
            (curve,) = scaling.curves(results.load(RUNS / case / "fit").ok)
            model = physics.fit_curve(curve)
            for rate in case_rates:
                what_if = model.with_layout(physics.Layout(inter_node_bps=rates.parse(rate, "rate"),
                                                           measured_link_bps=rates.parse(FIT_RATE, "rate")))
                for r in results.load(RUNS / case / f"held-{rate}").ok:
                    measured = scaling.rate(r, curve.metric)
                    rows.append({"case": case, "workers": r.workers, "rate": rate, "measured": measured,
                                 "predicted": what_if.predict(r.workers),
                                 "error": what_if.predict(r.workers) / measured - 1})
        return rows
    finally:
        coll.PIPELINED, physics.IN_FLIGHT, physics.core_queue = saved


def main() -> None:
    out = {}
    for name, (pipelined, in_flight, queue) in VARIANTS.items():
        rows = errors(pipelined, in_flight, queue)
        values = [abs(r["error"]) for r in rows]
        by_case = {}
        for case in CASES:
            mine = [abs(r["error"]) for r in rows if r["case"] == case]
            by_case[case] = {"median_error": statistics.median(mine), "max_error": max(mine)}
        out[name] = {"pipelined_ring": pipelined, "calls_in_flight": in_flight, "core_queue": queue,
                     "median_error": statistics.median(values), "max_error": max(values), "by_case": by_case,
                     "points": rows}
        print(f"{name:22s} median {statistics.median(values):6.1%}  max {max(values):6.1%}  ({len(rows)} held-out points)  "
              + "  ".join(f"{c} {e['median_error']:.1%}/{e['max_error']:.1%}" for c, e in by_case.items()))
    (ROOT / "bench/results/gloo-ablation.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
