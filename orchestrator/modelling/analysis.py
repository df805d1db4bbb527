"""Pure analysis of a sweep's results: curves, fits, predictions, recommendations, comparisons and the verdict.

    analyze(results.Results, settings) -> dict      what report.json holds; every report format shows it

The reports (orchestrator/report) only format this; ``recommend`` and ``share`` call it directly. No Ray, no
files: the caller reads results.jsonl through orchestrator.measuring.results (latest record of each trial id).

Rules that keep the numbers true:
- throughputs are compared (comparisons, the verdict, a shared plot axis) only in the same unit; curves in
  different units are compared by speedup over their own baseline, and the report says why;
- efficiencies are compared only on the same baseline worker count and scaling mode;
- superseded records (a trial id run again) never enter a curve; the report counts them;
- stale points (measured under an earlier plan of their curve: results.current) enter no curve, fit,
  verdict or cost; the report names them.
"""

from __future__ import annotations

from typing import Optional

from orchestrator import __version__
from orchestrator.measuring import collective as coll, results
from orchestrator.modelling import beyond_speed, cost, fit, physics, scaling
from orchestrator.job.plan import builtin_entrypoint, fresh_processes_reason

DEFAULTS = {"threshold": 0.8, "max_workers": None, "layout": None, "pricing": None}


def horizon(model: fit.Fit, settings: dict) -> int:
    """The largest worker count a recommendation considers: the user's, else 4x the largest measured (>= 16)."""
    return settings["max_workers"] or max(16, 4 * max(model.measured))


def accepted_counts(curve: scaling.Curve, top: int) -> list[int]:
    """The worker counts up to ``top`` that the job accepts, so that a recommendation is one `train` runs: under
    strong scaling with a global batch, the counts it divides (``batch.global``: the per-worker batch is
    global / N, at least one sample); on TPU, whole slices (multiples of the hosts a slice has); for a built-in
    workload, the counts whose workers' shards of the training set still hold a batch (the spec's own rules,
    job.spec.JobSpec)."""
    record = curve.records[0]
    counts = list(range(1, top + 1))
    tpu = record.get("tpu") or {}
    if tpu.get("hosts"):
        counts = [n for n in counts if n % int(tpu["hosts"]) == 0]
    total = record.get("global_batch")
    strong = curve.scaling == "strong" and record.builtin and total
    if strong:
        counts = [n for n in counts if int(total) % n == 0]
    samples, per_worker = record.get("train_samples"), record.get("per_worker_batch")
    if record.builtin and samples and (per_worker or strong):
        chips = max(1, int(record.get("replicas") or record.workers) // max(1, record.workers))
        counts = [n for n in counts
                  if int(samples) // (n * chips) >= (int(total) // n if strong else int(per_worker))]
    return counts or [record.workers]


def counts_rule(curve: scaling.Curve, top: int) -> Optional[str]:
    """Which counts ``accepted_counts`` keeps, where not every count: said beside a capped recommendation."""
    record = curve.records[0]
    rules = []
    if (record.get("tpu") or {}).get("hosts"):
        rules.append(f"whole TPU slices (multiples of {record['tpu']['hosts']} hosts)")
    if curve.scaling == "strong" and record.builtin and record.get("global_batch"):
        rules.append(f"the counts that divide batch.global {record['global_batch']}")
    if record.builtin and record.get("train_samples") and max(accepted_counts(curve, top)) < top and not rules:
        rules.append(f"the counts whose workers' shards of the {record['train_samples']} training samples hold a "
                     "batch")
    return " and ".join(rules) or None


def choose(curve_fit: Optional[fit.Fit], physical: Optional[physics.Physical]) -> tuple[object, str]:
    """The model a curve's predictions and recommendation come from, and why: the physical model where the
    curve's trials measured their step's parts and all-reduce, unless the curve fit's held-out error is smaller
    over the same held-out counts; else the curve fit. A what-if never decides it (``what_if``)."""
    if physical is None:
        return curve_fit, "curve fit: the trials carry no step breakdown with a measured all-reduce (measure.breakdown)"
    if curve_fit is None:
        return physical, "physical: one worker count measured, too few for a curve fit"
    shared = sorted(set(physical.loo_by_count) & set(curve_fit.loo_by_count or {}))
    if shared:
        mine = sum(physical.loo_by_count[c] for c in shared) / len(shared)
        theirs = sum(curve_fit.loo_by_count[c] for c in shared) / len(shared)
        where = ", ".join(map(str, shared))
        if theirs < mine:
            return curve_fit, (f"curve fit: its held-out error {100 * theirs:.1f}% is below the physical model's "
                               f"{100 * mine:.1f}% (held out: {where} workers)")
        return physical, (f"physical: its held-out error {100 * mine:.1f}% is at most the curve fit's "
                          f"{100 * theirs:.1f}% (held out: {where} workers)")
    return physical, "physical: from the measured compute, all-reduce bandwidth and latency, and overlap"


def _layout(settings: dict) -> physics.Layout:
    return physics.Layout(**(settings.get("layout") or {}))


def _predicted(model, counts: list[int], baseline: int) -> list[dict]:
    out = []
    for n in counts:
        low, high = model.band(n)
        out.append({"workers": n, "throughput": model.predict(n), "low": low, "high": high,
                    "efficiency": fit.efficiency(model, n, baseline), "measured": n in model.measured})
    return out


def predictions(curves: list[scaling.Curve], settings: dict) -> dict:
    """Fitted scaling models, predictions with their band, and a recommended worker count per curve; with a
    what-if layout, the physical model's answer to it beside them (``what_if``), never in their place."""
    fits, recommendations, models = [], [], {}
    layout = _layout(settings)
    for curve in curves:
        curve_fit = fit.fit_curve(curve)
        physical = physics.fit_curve(curve)
        model, why = choose(curve_fit, physical)
        if model is None:
            continue
        models[curve.name] = model
        key = {"framework": curve.framework, "strategy": curve.strategy, "execution": curve.execution,
               "workload": curve.workload, "name": curve.name, "label": curve.label, "unit": curve.unit,
               "baseline_workers": curve.baseline_workers}
        top = horizon(model, settings)
        counts = accepted_counts(curve, top)
        rec = fit.recommend(model, settings["threshold"], top, baseline=curve.baseline_workers, counts=counts)
        others = {"curve_fit": curve_fit, "physical": physical}
        entry = {**key, **model.to_dict(), "chosen_because": why,
                 "predicted": _predicted(model, counts, curve.baseline_workers),
                 # The model fits the measured throughputs clearly worse than their mean does: its RMS error
                 # over 1.1x the mean's (R² below 1 - 1.1², -0.21). A flat, noisy curve sits near R² 0 either way.
                 "fit_below_mean": model.r2 < 1 - 1.1 ** 2,
                 "alternatives": {name: {**m.to_dict(), "at_recommended": m.predict(rec.workers_above_threshold)}
                                  for name, m in others.items() if m is not None and m is not model}}
        if model is physical:
            entry["parts_at_recommended"] = physical.parts(rec.workers_above_threshold)
            caveat = physics.sharing_caveat(physical, counts[-1])
            if caveat:
                entry["assumptions"] = [*entry["assumptions"], caveat]
        predicted_speedup = rec.predicted_throughput / model.predict(curve.baseline_workers)
        row = {**key, **rec.to_dict(), "predicted_speedup": predicted_speedup, "model": model.model,
               "capped": rec.workers_above_threshold >= counts[-1], "largest_count": counts[-1],
               "counts_rule": counts_rule(curve, top), "fit_below_mean": entry["fit_below_mean"],
               "r2": model.r2}
        if layout.what_if and physical is not None:
            entry["what_if"], row["what_if"] = what_if(physical, layout, settings, curve)
        fits.append(entry)
        recommendations.append(row)
    return {"fits": fits, "recommendations": recommendations, "_models": models,
            "verdict": verdict(curves, recommendations),
            "recommend_settings": {"threshold": settings["threshold"], "max_workers": settings["max_workers"],
                                   "layout": layout.to_dict() if layout.what_if or layout.measured_link_bps else None}}


def what_if(physical: physics.Physical, layout: physics.Layout, settings: dict, curve: scaling.Curve) -> tuple[dict, dict]:
    """The physical model's predictions and recommendation in another layout (link rates, workers per node),
    with what it assumed: (the fit's entry, the recommendation's)."""
    model = physical.with_layout(layout)
    top = horizon(model, settings)
    baseline = curve.baseline_workers
    counts = accepted_counts(curve, top)
    rec = fit.recommend(model, settings["threshold"], top, baseline=baseline, counts=counts)
    assumptions = [*physical.assumptions, *physics.what_if_assumptions(physical, layout, counts[-1])]
    problem = physics.what_if_problem(physical, layout)
    entry = {"layout": layout.to_dict(), "assumptions": assumptions, "changes_nothing": problem,
             "predicted": _predicted(model, counts, baseline),
             "parts_at_recommended": model.parts(rec.workers_above_threshold)}
    return entry, {**rec.to_dict(), "capped": rec.workers_above_threshold >= counts[-1], "layout": layout.to_dict(),
                   "assumptions": assumptions, "changes_nothing": problem}


def verdict(curves: list[scaling.Curve], recommendations: list[dict]) -> Optional[dict]:
    """Which curve is best at its recommended count. By predicted throughput where every recommended curve
    is in the same unit; else by predicted speedup over its own baseline where all share one baseline; else
    no verdict, and why. A curve whose model fits its measurements worse than their mean does
    (``fit_below_mean``) is not ranked: its predicted throughput is not borne out; the verdict names it."""
    if len(recommendations) < 2:
        return None
    left_out = [f"{r['label']} (R² {r['r2']:.2f})" for r in recommendations if r.get("fit_below_mean")]
    recommendations = [r for r in recommendations if not r.get("fit_below_mean")]
    if len(recommendations) < 2:
        which = (f"the model of {left_out[0]} fits its measurements worse than their mean does, so its predictions are"
                 if len(left_out) == 1 else f"the models of {' and '.join(left_out)} fit their measurements worse "
                 "than their means do, so their predictions are")
        return {"basis": None, "left_out": left_out,
                "reason": f"{which} not borne out: measure more worker counts (sweep.workers) or more repeats"}
    found = _ranked(curves, recommendations)
    if left_out:
        found["left_out"] = left_out
    return found


def _ranked(curves: list[scaling.Curve], recommendations: list[dict]) -> dict:
    by_name = {(c.name, c.workload): c for c in curves}
    chosen = [by_name[(r["name"], r["workload"])] for r in recommendations]
    pairs = [(a, b) for i, a in enumerate(chosen) for b in chosen[i + 1:]]
    unit_reason = next((why for a, b in pairs if (why := scaling.comparable_throughput(a, b))), None)
    if unit_reason is None:
        basis, value = "throughput", "predicted_throughput"
    else:
        baseline_reason = next((why for a, b in pairs if (why := scaling.comparable_efficiency(a, b))), None)
        if baseline_reason is not None:
            return {"basis": None, "reason": f"{unit_reason}; and {baseline_reason}, so no curve is ranked"}
        basis, value = "speedup", "predicted_speedup"
    ranked = sorted(recommendations, key=lambda r: r[value], reverse=True)
    best, runner = ranked[0], ranked[1]
    return {
        "basis": basis,
        "best": best["label"],
        "workers": best["workers"],
        "ratio": best[value] / runner[value],
        "best_value": best[value],
        "versus": runner["label"],
        "versus_workers": runner["workers"],
        "versus_value": runner[value],
        "baseline_workers": best["baseline_workers"],
        "reason": unit_reason,
    }


_MEAN_KEYS = ("input_ms", "compute_ms", "exposed_comm_ms", "wait_ms", "other_ms", "step_ms", "measured_sum_ms",
              "ring_bound_ms", "allreduce_ms", "overlap_fraction")


def _mean(values: list) -> Optional[float]:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def step_breakdowns(curves: list[scaling.Curve]) -> dict:
    """Per curve and worker count: the step's parts (means over the repeats that measured them), the
    collective's bandwidth and alpha-beta fit, the ring bound; what is not known (report/prose.py words them)."""
    rows, notes = [], []
    for curve in curves:
        by_count: dict[int, list[dict]] = {}
        for record in curve.records:
            if record.get("breakdown"):
                by_count.setdefault(record.workers, []).append(record.get("breakdown"))
        for workers in sorted(by_count):
            found = by_count[workers]
            row = {"name": curve.name, "label": curve.label, "framework": curve.framework, "workers": workers,
                   "trials": len(found), "backend": next((b.get("backend") for b in found if b.get("backend")), None),
                   "gradient_bytes": found[0].get("gradient_bytes")}
            row.update({key: _mean([b.get(key) for b in found]) for key in _MEAN_KEYS})
            benches = [b["collective"] for b in found if b.get("collective")]
            if benches:
                row["collective"] = benches[0]
                row["busbw_peak_gb_per_s"] = _mean([c["busbw_peak_gb_per_s"] for c in benches])
                # through the one fit, by the backend's rule (a record fitted by another rule is refitted)
                fitted = [f for c in benches if (f := coll.from_record(c, workers, row["gradient_bytes"],
                                                                       row["backend"])) is not None]
                fits = [{**f.to_dict(), "beta_ns_per_kib": 1e9 * 1024 * coll.bus_factor(workers) / f.bus_bytes_per_s}
                        for f in fitted]
                for key in ("alpha_us", "beta_ns_per_kib", "bus_gb_per_s", "spread"):
                    row[key] = _mean([f.get(key) for f in fits])
            row["parts_exceed_step"] = any(b.get("parts_exceed_step") for b in found)
            row["ranks"] = found[0].get("ranks")
            row["framework_timers"] = found[0].get("framework_timers")
            rows.append(row)
        mine = [r for r in rows if r["name"] == curve.name and r.get("step_ms") and r.get("compute_ms") is not None]
        if not mine and curve.execution is None:  # a user's function
            has_bench = any(r["name"] == curve.name and r.get("collective") for r in rows)
            notes.append(
                f"{curve.label}: a user's function is not broken down into compute, communication and input: its "
                "steps are its own code, timed only between its reports. "
                + ("Measured without changing it: the all-reduce microbenchmark in its own workers, after it ran "
                   "(same placement and backend)." if has_bench else
                   "Its collective is not measured either: " + (
                       "TensorFlow's strategy belongs to the function, and a second one cannot be made in its "
                       "process." if curve.framework == "tensorflow" else
                       "only with 2 or more workers and a torch process group, after the function returns."))
            )
    return {"rows": rows, "notes": notes}



def time_to_target(curves: list[scaling.Curve]) -> dict:
    """Per curve and worker count: steps, samples and seconds to training.target (means over the trials that
    reached it), and against the smallest count that reached it: the time-to-target speedup and the
    statistical efficiency, samples to target there / samples to target at N (below 1: a larger global batch
    needs more samples to the same quality)."""
    rows, notes = [], []
    for curve in curves:
        by_count: dict[int, list[dict]] = {}
        for record in curve.records:
            if record.get("target"):
                by_count.setdefault(record.workers, []).append(record.get("target"))
        mine = []
        for workers in sorted(by_count):
            found = by_count[workers]
            hit = [t for t in found if t.get("reached")]
            first = found[0]
            row = {"name": curve.name, "label": curve.label, "workers": workers, "metric": first["metric"],
                   "value": first["value"], "trials": len(found), "reached": len(hit),
                   "seconds": _mean([t.get("seconds") for t in hit]), "steps": _mean([t.get("steps") for t in hit]),
                   "samples": _mean([t.get("samples") for t in hit]),
                   "steps_unit": first.get("steps_unit", "steps")}
            if any(t.get("reported") is False for t in found):
                notes.append(f"{curve.label} at {workers} worker(s): the function never reported {first['metric']!r}")
            mine.append(row)
        reached = [r for r in mine if r["reached"]]
        if reached:
            base = reached[0]
            for row in mine:
                row["baseline_workers"] = base["workers"]
                row["speedup"] = base["seconds"] / row["seconds"] if row["reached"] and row["seconds"] else None
                row["statistical_efficiency"] = (base["samples"] / row["samples"]
                                                 if row["reached"] and row["samples"] and base["samples"] else None)
        rows += mine
    return {"rows": rows, "notes": notes}


def costs(curves: list[scaling.Curve], fits: dict[str, object], settings: dict, target_rows: list[dict]) -> Optional[dict]:
    """Time and cost to train a length at each size, per curve, and the two answers: the cheapest size that
    meets the deadline and the fastest that fits the budget. None without prices (settings or pricing:)."""
    pricing = dict(settings.get("pricing") or {})
    records = [r for c in curves for r in c.records]
    prices = pricing.get("prices") or next((r.get("pricing") for r in records if r.get("pricing")), None)
    if not prices:
        return None
    length = pricing.get("length") or ({"target": True} if target_rows else None) or fixed_work(curves)
    if not length:
        return {"prices": prices, "length": None, "rows": [], "answers": [],
                "note": "no length to price: the trials count no samples (a user's function that reports none); "
                        "pass --train-steps (for a curve that scales strongly) or --to-target"}
    degenerate = steps_under_weak_scaling(curves, length)
    if degenerate:  # `recommend` refuses it (exit 2); a report re-rendered from older settings says it
        return {"prices": prices, "length": length, "rows": [], "answers": [], "refused": degenerate,
                "note": degenerate}
    rows, answers = [], []
    for curve in curves:
        model = fits.get(curve.name)
        sample = curve.records[0]
        per_replica = {k: v * (sample.get("ray_workers") or sample.workers) / sample.workers
                       for k, v in (sample.get("resources_per_worker") or {"CPU": 1.0}).items()}
        train_samples = sample.get("train_samples") if curve.metric == "samples_per_sec" else None
        if "target" in length:
            targets = {r["workers"]: r for r in target_rows if r["name"] == curve.name and r["reached"] and r["samples"]}
            counts = sorted(targets)
        elif "samples" in length and curve.metric != "samples_per_sec":
            continue  # its throughput counts steps or reports, not the samples priced
        else:
            targets = {}
            counts = accepted_counts(curve, horizon(model, settings)) if model is not None else [p.workers for p in curve.points]
        mine = []
        for n in counts:
            measured = curve.point(n)
            # A measured count shows what was measured; the model fills the counts between and beyond.
            throughput = measured.throughput if measured else model.predict(n) if model is not None else None
            if not throughput:
                continue
            units = (sample.get("per_worker_batch") or 1) * (n if curve.scaling != "strong" else sample.workers) \
                if curve.metric == "samples_per_sec" else 1.0
            if curve.scaling == "strong" and sample.get("global_batch") and curve.metric == "samples_per_sec":
                units = sample.get("global_batch")
            seconds = cost.seconds_for(length, throughput, units, (targets.get(n) or {}).get("samples"), train_samples)
            if seconds is None:
                continue
            per_hour = cost.hourly(per_replica, n, prices)
            mine.append({"name": curve.name, "label": curve.label, "workers": n, "seconds": seconds,
                         "cost_per_hour": per_hour, "cost": per_hour * seconds / 3600, "measured": measured is not None})
        rows += mine
        cheapest = cost.cheapest_within(mine, pricing.get("deadline_s"))
        fastest = cost.fastest_within(mine, pricing.get("budget"))
        answers.append({"name": curve.name, "label": curve.label, "cheapest_within_deadline": cheapest,
                        "fastest_within_budget": fastest})
    note = None
    if not rows:
        note = ("no size could be priced: " + ("an epoch needs the training set's size, which these trials' records "
                "do not hold (written before it was recorded, or a user's function); pass --train-steps"
                if "epochs" in length else "no curve has a throughput at any count for this length"))
    return {"prices": prices, "length": length, "deadline_s": pricing.get("deadline_s"), "budget": pricing.get("budget"),
            "rows": rows, "answers": answers, **({"note": note} if note else {})}


def fixed_work(curves: list[scaling.Curve]) -> Optional[dict]:
    """The length priced by default: a fixed amount of work, the samples the smallest measured count's trials
    trained on (training steps x global batch), the largest such over the curves; None where no curve counts
    samples. Under weak scaling a fixed number of steps trains N times the samples at N workers, so its time
    never falls with N: a fixed amount of work is what a bigger cluster can finish sooner."""
    best = None
    for curve in curves:
        if curve.metric != "samples_per_sec":
            continue
        for record in curve.records:
            if record.workers == curve.baseline_workers and record.get("steps") and record.get("global_batch"):
                samples = int(record["steps"]) * int(record["global_batch"])
                if best is None or samples > best["samples"]:
                    best = {"samples": samples, "why": f"the samples the {curve.baseline_workers}-worker trials of "
                                                       f"{curve.label} trained on ({record['steps']} steps of "
                                                       f"{record['global_batch']})"}
    return best


def steps_under_weak_scaling(curves: list[scaling.Curve], length: dict) -> Optional[str]:
    """Why a number of steps cannot be priced across sizes of a weak-scaling curve, or None: S steps at N
    workers train N times the samples of 1 worker, so time (and cost) never fall with N and the cheapest and
    the fastest size are both the smallest, for every job."""
    weak = [c.label for c in curves if c.scaling == "weak"]
    if "steps" not in length or not weak:
        return None
    return (f"--train-steps {length['steps']}: {weak[0]} scales weakly (a fixed per-worker batch), so "
            f"{length['steps']} steps at N workers train N times the samples of 1 worker and take no less time at "
            "any N: every answer would be the smallest size. Price a fixed amount of work instead: --epochs E, "
            "--to-target, or no length (the samples the smallest count's trials trained on)")


def unit_notes(curves: list[scaling.Curve]) -> list[str]:
    """What each curve's throughput counts, where that is not samples."""
    notes = []
    for c in curves:
        if c.metric == "reports_per_sec":
            notes.append(f"{c.label} reports no sample count: its throughput is reports/s (one 'step' is the time "
                         "between two of its ray.train.report calls), so its efficiency is t(b) / ((N/b) · t(N)) per "
                         "report interval, and its throughput is not compared with other curves'. Set "
                         "workload.samples_metric to count samples.")
        elif c.metric == "steps_per_sec":
            notes.append(f"{c.label}: throughput in steps/s (some trials counted no samples).")
        if c.workload == "emulated":
            notes.append(f"{c.label}: compute was emulated (workload.model emulated): each layer's forward and "
                         "backward is a fixed device time during which the CPU is idle, as a GPU kernel leaves it; "
                         "the gradients are real and all-reduced over the trial's real collective and links. Its "
                         "throughput measures the communication and the framework, not a model's arithmetic.")
    return notes


def _shares_cores(record: results.TrialRecord) -> bool:
    """Whether this trial's workers ran more threads in all than the cluster has CPUs (fractional-CPU
    workers make that possible). Its throughput then measures contention as much as scaling."""
    threads = record.get("threads_per_worker") or 1
    cluster = (record.get("environment") or {}).get("cluster_cpus") or 0
    return cluster > 0 and record.workers * threads > cluster


def adaptive_savings(records: list[results.TrialRecord]) -> list[dict]:
    """Per arm of an adaptive sweep: trials planned (every candidate count x repeats) and run."""
    arms = {}
    for r in records:
        plan = r.get("adaptive")
        if plan:
            entry = arms.setdefault(r.arm, {"framework": r.framework, "strategy": r.strategy, "name": r.arm,
                                            "label": scaling.record_label(r),
                                            "planned_trials": len(plan["candidates"]) * plan["repeats"],
                                            "trials_run": 0, "workers_measured": set()})
            entry["trials_run"] += 1
            entry["workers_measured"].add(r.workers)
    out = []
    for key in sorted(arms):
        entry = arms[key]
        entry["workers_measured"] = sorted(entry["workers_measured"])
        entry["trials_saved"] = entry["planned_trials"] - entry["trials_run"]
        out.append(entry)
    return out


def settings_ran(records: list[results.TrialRecord]) -> list[dict]:
    """Per arm and worker count, what was run: batch sizes, steps, threads, placement, launcher and why, and
    how many sets of worker processes its trials ran in (``processes``: fewer than ``trials`` where repeats
    reused them)."""
    seen, sets, builtin, legacy = {}, {}, {}, set()
    for r in records:
        reuse = r.get("worker_reuse")
        builtin[(r.arm, r.workers)] = builtin_entrypoint(r.get("entrypoint")) if r.get("entrypoint") else True
        if not results.records_worker_reuse(r):
            legacy.add((r.arm, r.workers))
        sets.setdefault((r.arm, r.workers), []).append(reuse["group"] if reuse else r.trial_id)
        seen.setdefault((r.arm, r.workers), {
            "framework": r.framework, "strategy": r.strategy, "execution": r.execution, "name": r.arm,
            "label": scaling.record_label(r), "workers": r.workers, "scaling": r.scaling,
            "ray_workers": r.get("ray_workers"), "per_worker_batch": r.get("per_worker_batch"),
            "global_batch": r.get("global_batch"), "steps": r.get("steps"),
            "warmup_steps": r.get("warmup_steps"), "threads_per_worker": r.get("threads_per_worker"),
            "resources_per_worker": r.get("resources_per_worker"), "nodes": len(r.get("nodes") or []),
            "launcher": r.get("launcher"), "launcher_reason": r.get("launcher_reason"),
            "shares_cores": _shares_cores(r),
        })
    for key, groups in sets.items():
        seen[key].update(trials=len(groups), processes=len(set(groups)))
        if len(groups) > 1 and len(set(groups)) == len(groups) and seen[key]["launcher"]:
            if key in legacy and seen[key]["launcher"] != "ray_train":
                seen[key]["fresh_processes_why"] = ("its records predate worker reuse (results.jsonl schema below 3), "
                                                    "when every trial started fresh processes")
            else:
                seen[key]["fresh_processes_why"] = fresh_processes_reason(seen[key]["launcher"],
                                                                          seen[key]["strategy"], builtin[key])
    return [seen[k] for k in sorted(seen)]


def sweep_time(records: list[results.TrialRecord]) -> Optional[dict]:
    """Where the sweep's time went, from the trials' records (results.time_parts): per arm and worker count
    and in all, the time to step 1 (fresh worker processes apart from reused ones), training, and after
    training (the step breakdown and the exports apart, where the workers timed them); failed trials' time;
    and the sweep's own time around its trials (Ray's start and the planning, between trials). Records of
    several invocations (a resume, a rerun) add up, and ``invocations`` counts each one's trials. The share of
    training is over all of it, up to the last trial's end (the reports and Ray's shutdown after it are in
    no record). None where no trial's record can tell."""
    parts = ("to_first_step_s", "training_s", "after_training_s", "breakdown_s", "export_s")
    rows: dict[tuple, dict] = {}
    fresh, reused = {"count": 0, "s": 0.0}, {"count": 0, "s": 0.0}
    counted = {"breakdown_s": 0, "export_s": 0}
    failed_s = other_s = orchestrator_s = 0.0
    runs: dict[str, dict] = {}
    for r in records:
        run = r.get("sweep_run") or {}
        orchestrator_s += float(run.get("before_s") or 0.0)
        if run.get("id"):
            seen = runs.setdefault(run["id"], {"started_at": run.get("started_at") or 0.0, "trials": 0})
            seen["trials"] += 1
        split = results.time_parts(r.data)
        if split is None:
            if r.ok:
                other_s += float(r.get("wall_time_s") or 0.0)
            else:
                failed_s += float(r.get("wall_time_s") or 0.0)
            continue
        row = rows.setdefault((r.arm, r.workers), {"name": r.arm, "label": scaling.record_label(r),
                                                   "workers": r.workers, "trials": 0, **{k: 0.0 for k in parts}})
        row["trials"] += 1
        for k in parts:
            row[k] += split[k] or 0.0
        for k in counted:
            counted[k] += split[k] is not None
        side = reused if (r.get("worker_reuse") or {}).get("use", 1) > 1 else fresh
        side["count"] += 1
        side["s"] += split["to_first_step_s"]
    if not rows:
        return None
    total = {k: sum(row[k] for row in rows.values()) for k in parts}
    span = (total["to_first_step_s"] + total["training_s"] + total["after_training_s"] + failed_s + other_s
            + orchestrator_s)
    out = {"total_s": span, **total, "failed_trials_s": failed_s, "not_broken_down_s": other_s,
           "orchestrator_s": orchestrator_s, "training_share": total["training_s"] / span if span else None,
           "fresh_worker_starts": fresh["count"], "fresh_to_first_step_s": fresh["s"],
           "reused_trials": reused["count"], "reused_to_first_step_s": reused["s"],
           "breakdowns": counted["breakdown_s"], "exports": counted["export_s"],
           "invocations": [runs[k]["trials"] for k in sorted(runs, key=lambda k: runs[k]["started_at"])],
           "rows": [rows[k] for k in sorted(rows, key=lambda k: (k[1], k[0]))]}
    return out




def analyze(found: results.Results, settings: Optional[dict] = None) -> dict:
    """The report as data: what report.json holds and what every other format shows."""
    settings = {**DEFAULTS, **(settings or {})}
    ok, failed = found.ok, found.failed
    curves = scaling.curves(ok)
    first = found.records[0] if found.records else None
    predicted = predictions(curves, settings)
    models = predicted.pop("_models")
    targets = time_to_target(curves)
    return {
        "job": first.job if first else None,
        "orchestrator_version": __version__,
        "recorded_by": sorted({str((r.get("environment") or {}).get("orchestrator", "unrecorded"))
                               for r in found.records}),
        "source": results.FILENAME,
        "trials": {"ok": len(ok), "failed": len(failed), "superseded": found.superseded,
                   "stale": [{"trial_id": r.trial_id, "arm": r.arm, "workers": r.workers, "repeat": r.repeat,
                              "status": r.status} for r in found.stale],
                   "torn_lines": list(found.torn)},
        "curves": [c.to_dict() for c in curves],
        "unit_notes": unit_notes(curves),
        "comparisons": [c.to_dict() for c in scaling.compare(curves)],
        "failed_trials": [{"trial_id": r.trial_id, "error": r.error or ""} for r in failed],
        "recovered_trials": [
            {"trial_id": r.trial_id, "failures": r.get("failures"), "events": r.get("failure_events") or []}
            for r in ok if r.get("failures")
        ],
        "settings": settings_ran(ok),
        # Time spent is time spent: stale points' trials ran too.
        "adaptive": adaptive_savings(found.records + found.stale),
        "sweep_time": sweep_time(found.records + found.stale),
        "environment": dict(first.get("environment") or {}) if first else {},
        "breakdown": step_breakdowns(curves),
        **predicted,
        "time_to_target": targets,
        "cost": costs(curves, models, settings, targets["rows"]),
        **beyond_speed.sections(ok),
    }
