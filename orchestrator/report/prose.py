"""The sentences a report says, from the numbers orchestrator.modelling.analysis computed: formatting only.

``annotate(data)`` adds them to the report's data before it is written (report.json holds them too):
``breakdown.sentences`` (one per curve: its largest cost at its largest count, and how it grew) and
``sweep_time.sentence`` / ``sweep_time.notes`` (where the sweep's time went, and what would make it cheaper).
"""

from __future__ import annotations


def annotate(data: dict) -> dict:
    section = data.get("breakdown")
    if section is not None and "sentences" not in section:
        by_curve: dict[str, list[dict]] = {}
        for row in section.get("rows", []):
            if row.get("step_ms") and row.get("compute_ms") is not None:
                by_curve.setdefault(row["name"], []).append(row)
        section["sentences"] = [breakdown_sentence(rows[0]["label"], sorted(rows, key=lambda r: r["workers"]))
                                for rows in by_curve.values()]
    spent = data.get("sweep_time")
    if spent and "sentence" not in spent:
        spent["sentence"] = sweep_time_sentence(spent)
        spent["notes"] = sweep_time_notes(spent)
    return data


def breakdown_sentence(label: str, rows: list[dict]) -> str:
    """The largest cost at the largest worker count and how it grew from the smallest."""
    from orchestrator.measuring.breakdown import NAMES, largest_part

    top, base = rows[-1], rows[0]
    if top.get("parts_exceed_step"):
        return (f"{label}: at {top['workers']} worker(s) the measured parts add up to {top['measured_sum_ms']:.2f} ms, "
                f"more than the timed step's {top['step_ms']:.2f} ms by more than its noise: the blocks ran slower "
                "than the timed steps (cores shared, another load), so no part is quoted as a share of the step.")
    part = largest_part(top)
    value = top[part] + (max(0.0, top.get("other_ms") or 0.0) if part == "wait_ms" else 0.0)
    name = "wait and other" if part == "wait_ms" else NAMES[part]
    text = f"{label}: at {top['workers']} worker(s) {name} is {100 * value / top['step_ms']:.0f}% of the step ({value:.2f} ms"
    if part == "exposed_comm_ms" and top.get("ring_bound_ms"):
        text += f", {value / top['ring_bound_ms']:.1f}x the ring bound of {top['ring_bound_ms']:.3f} ms"
    text += ")"
    if base is not top:
        before = base[part] + (max(0.0, base.get("other_ms") or 0.0) if part == "wait_ms" else 0.0)
        # A ratio only over a part that is there: under 1% of its step (a 1-worker all-reduce's few microseconds
        # of noise) it would read thousands of times.
        there = before >= max(0.005, 0.01 * (base.get("step_ms") or 0.0))
        if part in ("exposed_comm_ms", "wait_ms") and base["workers"] <= 1:
            there = False  # one worker has no all-reduce and no one to wait for: a ratio over it means nothing
        growth = f"{value / before:.1f}x its {before:.2f} ms" if there else f"up from {before:.3f} ms"
        text += f", {growth} at {base['workers']} worker(s)"
    if top.get("overlap_fraction") is not None:
        text += f"; {100 * top['overlap_fraction']:.0f}% of the all-reduce overlaps compute"
    return text + "."


def sweep_time_notes(t: dict) -> list[str]:
    """What would make the sweep cheaper, where a part costs more than the training it serves."""
    notes = []
    if t["breakdown_s"] + t["export_s"] > t["training_s"]:
        notes.append("The step breakdown and the exports took longer than the training: measure.breakdown: false "
                     "and deploy.export: false leave them out where the sweep need only measure throughput.")
    if t["fresh_to_first_step_s"] > t["training_s"]:
        notes.append("Starting fresh worker processes (Ray placing them, importing the framework, the "
                     "rendezvous) took longer than the training: repeats of a worker count share their processes "
                     "(sweep.reuse_workers) under launcher: actors; longer trials (training.steps) spread that "
                     "start over more measured steps.")
    return notes


def sweep_time_sentence(t: dict) -> str:
    """One sentence of ``sweep_time``: each part in seconds, largest claims first."""
    def s(seconds: float) -> str:
        return f"{seconds:.1f} s" if seconds < 100 else f"{seconds:.0f} s"

    starts = f"{t['fresh_worker_starts']} start(s) of fresh worker processes {s(t['fresh_to_first_step_s'])}"
    if t["reused_trials"]:
        starts += f", {t['reused_trials']} trial(s) in reused ones {s(t['reused_to_first_step_s'])}"
    after = []
    if t["breakdowns"]:
        after.append(f"the step breakdown {s(t['breakdown_s'])} in {t['breakdowns']} trial(s)")
    if t["exports"]:
        after.append(f"the deployment exports {s(t['export_s'])} in {t['exports']}")
    rest = t["after_training_s"] - t["breakdown_s"] - t["export_s"]
    after.append(f"evaluation, TensorBoard files and the rest {s(max(0.0, rest))}")
    runs = t.get("invocations") or []
    text = (f"Over {len(runs)} invocations of the sweep on these results ({' and '.join(map(str, runs))} trials, in "
            "the order they ran: a resume or a rerun adds to the results before it), t" if len(runs) > 1 else "T")
    text += (f"raining took {s(t['training_s'])} of the sweep's {s(t['total_s'])} ({100 * t['training_share']:.0f}%); "
            f"reaching step 1 {s(t['to_first_step_s'])} ({starts}); after training {s(t['after_training_s'])} "
            f"({', '.join(after)})")
    if t["orchestrator_s"]:
        text += f"; Ray's start, planning and between trials {s(t['orchestrator_s'])}"
    if t["failed_trials_s"]:
        text += f"; failed trials {s(t['failed_trials_s'])}"
    if t["not_broken_down_s"]:
        text += f"; trials whose records cannot be broken down {s(t['not_broken_down_s'])}"
    return text + "."
