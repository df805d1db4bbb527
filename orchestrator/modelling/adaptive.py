"""Pure policy for adaptive sweeps: which worker count to measure next, and when to stop.

    decide(candidates, measured, threshold, history) -> Decision

1. Measure the two smallest candidate counts.
2. Fit (orchestrator.modelling.fit), recommend a count; remember it.
3. Stop when the last two recommendations agree and at least three counts are measured, or when every
   candidate is measured. Otherwise measure next the candidate whose predicted throughput is least certain
   (the widest bootstrap band relative to the prediction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from orchestrator.modelling import fit

STABLE_ROUNDS = 2


@dataclass(frozen=True)
class Decision:
    next_workers: Optional[int]
    reason: str
    recommended: Optional[int] = None


def decide(candidates: list[int], measured: dict[int, list[float]], threshold: float, history: list[int]) -> Decision:
    done = sorted(n for n, values in measured.items() if values)
    for start in sorted(candidates)[:2]:
        if start not in done:
            return Decision(start, f"measure the smallest counts first ({start})")
    points = [(n, x) for n in done for x in measured[n]]
    model = fit.fit_points([n for n, _ in points], [x for _, x in points])
    if model is None:
        missing = [c for c in candidates if c not in done]
        return Decision(missing[0] if missing else None, "cannot fit yet")
    recommended = fit.recommend(model, threshold, max(candidates), baseline=min(done)).workers_above_threshold
    recent = [*history, recommended][-STABLE_ROUNDS:]
    if len(done) >= 3 and len(recent) == STABLE_ROUNDS and len(set(recent)) == 1:
        return Decision(None, f"recommendation stable at {recommended} worker(s)", recommended)
    upcoming = fit.next_count_to_measure(model, candidates, done)
    if upcoming is None:
        return Decision(None, "every candidate count measured", recommended)
    return Decision(upcoming, f"least certain prediction at {upcoming} worker(s)", recommended)
