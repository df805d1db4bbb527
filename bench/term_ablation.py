"""The physical model's terms switched one at a time, side by side on the same records: every case of
prediction_scale.py (bench/runs/scale/), fitted and predicted as that bench does (the what-if through the
model's own functions, equal to `orchestrator recommend --bandwidth RATE --measured-link 200mbit`). Variants:

    the model            as shipped
    one segment at once  gloo's ring not pipelined: a call takes alpha + W (the model: max(alpha + W/2, W))
    one call in flight   DDP's buckets all-reduced one at a time (the model: ProcessGroupGloo's two threads)
    core queue k         a hop behind all k - 1 other ranks of its core and its own turn: k times its latency
                         (the model: (1 + k)/2, behind half of them)
    no core queue        a hop's latency as at a core a rank, whatever the ranks per core
    no host CPU terms    neither the calls' CPU-bound time nor the step's CPU floor
    CPU of the bytes alone  the all-reduce's CPU a rank u_b 2(n-1)/n, no u_h 2(n-1) for its messages
    factor, no credit    the steps' calls faster than alone as an in-step factor down to 0.5 of their time alone,
                         latency and bytes alike (the model: c bytes an idle link sends at once, i >= 1)

Processor sharing, the model's CPU   each rank's CPU (the model's, from the fit) slowed by a processor-sharing
                         queue of the host's load: T = T_0 + cpu rho / (1 - rho), rho = k cpu / T (k ranks a core),
                         T_0 the model's step without its host-CPU terms (the CPU floor and the calls' CPU; a hop's
                         core queue (1 + k)/2 stays in it), solved in closed form (at least k cpu); added to the
                         fitted model, i and c not refitted with it

Two diagnoses, not predictions (they read the held-out trials' own CPU, which no user has before the run):
    CPU as measured      the host-CPU terms (a rank's CPU a step and the all-reduce's u_b, u_h) fitted on the
                         fit's and the held-out trials
    CPU as measured, processor sharing   that, through the processor-sharing queue above
They name the terms that miss at 16 workers: the all-reduce's CPU a rank extrapolated from 1-4 workers, and the
ranks' contention for the cores beyond a hop's queue and the CPU floor (the fitted in-step factor is 1.0 in
every case but the straggler's, so it absorbs none of it).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from orchestrator.job import rates  # noqa: E402
from orchestrator.measuring import collective as coll, results  # noqa: E402
from orchestrator.modelling import physics, scaling  # noqa: E402
from prediction_scale import CASES, FIT_RATE, RUNS, restore  # noqa: E402


@contextlib.contextmanager
def patched(module, name: str, value):
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def unchanged(model, measured=()):
    return model


def cpu_as_measured(model, measured):
    """The model with its host-CPU terms fitted on every ``measured`` trial, the fit's and the held-out ones
    (diagnosis only)."""
    base, (u_b, u_h), _, _ = physics.host_cpu_terms(list(measured))
    return replace(model, cpu_base_ms=base, cpu_comm=u_b, cpu_hop=u_h)


class ProcessorSharing:
    """A model whose ranks' CPU waits for the host's cores: T = T_0 + cpu rho/(1 - rho), rho = k cpu / T (the
    processor-sharing queue's slowdown of a job of ``cpu`` at load rho), T_0 the step without the host-CPU terms.
    With a = k cpu it is (T - T_0)(T - a) = cpu a, whose larger root
    T = ((a + T_0) + sqrt((a - T_0)^2 + 4 cpu a)) / 2 is never under the CPU floor a."""

    def __init__(self, model):
        self.model = model

    def with_layout(self, layout):
        return ProcessorSharing(self.model.with_layout(layout))

    def step_ms(self, n: int) -> float:
        m = self.model
        t0 = replace(m, cpu_comm=None, cpu_base_ms=None).step_ms(n)
        cpu, k = m.cpu_per_rank_ms(n), m.ranks_per_core(n)
        if not cpu or k <= 0 or n <= 1:
            return t0
        a = k * cpu
        return ((a + t0) + ((a - t0) ** 2 + 4 * cpu * a) ** 0.5) / 2

    def predict(self, n: int) -> float:
        return 1e3 * self.model.units_per_step(n) / self.step_ms(n)


def bytes_alone(rows, ys):
    """The all-reduce's CPU on its first column (the bytes) alone, through the origin."""
    xs = [r[0] for r in rows]
    return sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs), 0.0


@contextlib.contextmanager
def stacked(*contexts):
    with contextlib.ExitStack() as stack:
        for c in contexts:
            stack.enter_context(c)
        yield


VARIANTS = {  # name: (a context the fit and prediction run in, a change to the fitted model)
    "the model": (contextlib.nullcontext, unchanged),
    "one segment at once": (lambda: patched(coll, "PIPELINED", ()), unchanged),
    "one call in flight": (lambda: patched(physics, "IN_FLIGHT", {}), unchanged),
    "core queue k": (lambda: patched(physics, "core_queue", lambda k: max(1.0, k or 1.0)), unchanged),
    "no core queue": (lambda: patched(physics, "core_queue", lambda k: 1.0), unchanged),
    "no host CPU terms": (contextlib.nullcontext, lambda m, measured=(): replace(m, cpu_comm=None, cpu_base_ms=None)),
    "CPU of the bytes alone": (lambda: patched(physics, "nonnegative_least_squares", bytes_alone), unchanged),
    "factor, no credit": (lambda: stacked(patched(physics, "CREDIT_GRID", [0]),
                                          patched(physics, "INFLATION_GRID", np.round(np.arange(0.5, 4.0001, 0.01), 4))),
                          unchanged),
    "processor sharing, the model's CPU": (contextlib.nullcontext, lambda m, measured=(): ProcessorSharing(m)),
    "CPU as measured": (contextlib.nullcontext, cpu_as_measured),
    "CPU as measured, processor sharing": (contextlib.nullcontext,
                                           lambda m, measured: ProcessorSharing(cpu_as_measured(m, measured))),
}
DIAGNOSES = ("CPU as measured", "CPU as measured, processor sharing")


def errors(context, change) -> list[dict]:
    rows = []
    with context():
        for case, (_, _, _, case_rates) in CASES.items():
            (curve,) = scaling.curves(results.load(RUNS / case / "fit").ok)
            every = list(curve.records) + [r for rate in case_rates for r in results.load(RUNS / case / f"held-{rate}").ok]
            measured = [t for r in every
                        if (t := physics.from_record(r, curve.metric, scaling.rate(r, curve.metric) or 0.0))]
            model = change(physics.fit_curve(curve), measured)
            for rate in case_rates:
                what_if = model.with_layout(physics.Layout(inter_node_bps=rates.parse(rate, "rate"),
                                                           measured_link_bps=rates.parse(FIT_RATE, "rate")))
                for r in results.load(RUNS / case / f"held-{rate}").ok:
                    measured, predicted = scaling.rate(r, curve.metric), what_if.predict(r.workers)
                    rows.append({"case": case, "workers": r.workers, "rate": rate, "measured": measured,
                                 "predicted": predicted, "error": predicted / measured - 1})
    return rows


def stats(rows: list[dict]) -> dict:
    values = [abs(r["error"]) for r in rows]
    return {"median_error": statistics.median(values), "max_error": max(values)}


def main() -> None:
    restore(list(CASES))
    out = {}
    for name, (context, change) in VARIANTS.items():
        rows = errors(context, change)
        by_case = {case: stats([r for r in rows if r["case"] == case]) for case in CASES}
        out[name] = {**stats(rows), "by_case": by_case, "points": rows, "diagnosis_only": name in DIAGNOSES}
        print(f"{name:20s} median {out[name]['median_error']:6.1%}  max {out[name]['max_error']:6.1%}  "
              f"({len(rows)} held-out points)  "
              + "  ".join(f"{c} {e['median_error']:.1%}/{e['max_error']:.1%}" for c, e in by_case.items()))
    (ROOT / "bench/results/term-ablation.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
