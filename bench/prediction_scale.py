"""Predictions at 8, 12 and 16 workers from a sweep of at most 4, on an emulated cluster of accelerator-like
workers (orchestrator/running/emulated.py: nodes in network namespaces, tbf-shaped links between them, traffic within a
node unshaped; orchestrator/workloads/device_time.py: compute as device time, real gradients over gloo). Needs
root; about an hour on 2 cores.

    .venv/bin/python bench/prediction_scale.py [--only NAME,...] [--analyse-only] [--keep PREVIOUS.json --keep-date D]

``--keep`` carries the cases not named by ``--only`` from a previous results file (each of its points marked
``"measured_on": D``), for a change that cannot move their predictions (e.g. one that only touches jobs of
several all-reduce calls a step): the summary then covers every case, and the table says which are carried.

Cases (``CASES``): two gradient sizes -- ``compute-bound`` (256 KiB of gradient under 95 ms of device time a
step) and ``comm-bound`` (2 MiB under 48 ms) -- each in two layouts, 1 worker per node (16 nodes) and 2 per
node (8 nodes of 2 CPUs); and a straggler case (the compute-bound job with a 15% per-step jitter on every rank).
Per case: a sweep of 1, 2, 3 and 4 workers at the fit rate with the step breakdown (2 repeats), then held-out
sweeps of 8, 12 and 16 workers at the fit rate and at two others (1 repeat; their breakdown is recorded to
name the term that misses, and never read by the prediction).

The predictions come from the product as a user runs it: ``orchestrator recommend FITDIR --bandwidth RATE
--measured-link FIT_RATE --max-workers 16`` and its report.json (the what-if's predictions: the physical model),
and the best curve fit (orchestrator/modelling/fit.py's fit_curve on the same records, which knows nothing of the rate).
Nothing is told to the model that a user could not pass. Each sweep is its own directory under
bench/runs/scale/ (rerunning resumes it; git-ignored). Each sweep's records (results.jsonl, job.yaml) are kept
in bench/results/prediction-scale-records/, from which ``--analyse-only`` restores a sweep directory a clean
clone lacks, so the analysis and bench/term_ablation.py refit from the repository. Writes
bench/results/prediction-scale.json and .md; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.job import rates  # noqa: E402
from orchestrator.measuring import collective as coll, results
from orchestrator.modelling import fit, physics, scaling
from orchestrator.running import emulated

OUT = ROOT / "bench/results"
RUNS = ROOT / "bench/runs/scale"
RECORDS = OUT / "prediction-scale-records"
KEPT = ("results.jsonl", "job.yaml")
BIN = ROOT / ".venv/bin/orchestrator"
FIT_RATE = "200mbit"
RATES = ("100mbit", "200mbit", "400mbit")
FIT_COUNTS = [1, 2, 3, 4]
HELD_COUNTS = [8, 12, 16]
WORKLOADS = {
    "compute-bound": {"layers": 8, "layer_mib": 0.03125, "forward_ms": 30.0, "backward_ms": 60.0,
                      "optimizer_ms": 5.0, "at_batch": 32},
    "comm-bound": {"layers": 16, "layer_mib": 0.125, "forward_ms": 15.0, "backward_ms": 30.0,
                   "optimizer_ms": 3.0, "at_batch": 32},
}
CASES = {
    "compute-bound-1pn": ("compute-bound", 1, {}, RATES),
    "comm-bound-1pn": ("comm-bound", 1, {}, RATES),
    "compute-bound-2pn": ("compute-bound", 2, {}, RATES),
    "comm-bound-2pn": ("comm-bound", 2, {}, RATES),
    "straggler-jitter-1pn": ("compute-bound", 1, {"jitter": 0.15}, (FIT_RATE,)),
}


def job(name: str, params: dict, workers: list[int], breakdown: bool, repeats: int) -> dict:
    return {
        "name": name, "arms": [{"framework": "torch", "strategy": "ddp"}],
        "workload": {"model": "emulated", "params": params}, "dataset": {"name": "synthetic", "num_samples": 4096},
        "batch": {"per_worker": 32, "scaling": "weak"},
        "training": {"steps": 60, "warmup_steps": 15, "report_every": 30},
        "sweep": {"workers": workers, "repeats": repeats}, "resources": {"cpus_per_worker": 1, "threads_per_worker": 1},
        "measure": {"breakdown": breakdown, "collective_repeats": 3}, "launcher": "actors",
    }


def sweep(cluster: emulated.Emulated, directory: Path, spec: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    started = time.monotonic()
    done = subprocess.run([str(BIN), "sweep", str(path), "--out", str(directory), "--address",
                           cluster.data["gcs_address"]], env={**cluster.ray_env(), **cluster.env},
                          capture_output=True, text=True, cwd=ROOT)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"  {directory.name}: rc {done.returncode} in {time.monotonic() - started:.0f} s (load {' '.join(load)})",
          flush=True)
    if done.returncode not in (0, 1):
        print(done.stderr[-2000:], file=sys.stderr)
    return directory


def measure(cases: list[str]) -> None:
    state = Path("/tmp/orchestrator-emulated-scale")
    by_layout: dict[int, list[str]] = {}
    for name in cases:
        by_layout.setdefault(CASES[name][1], []).append(name)
    for per_node, names in sorted(by_layout.items()):
        cluster = emulated.Emulated(state)
        cluster.down(progress=lambda *_: None)
        cluster = emulated.Emulated(state)
        nodes = max(HELD_COUNTS) // per_node
        print(f"emulated cluster: {nodes} nodes of {per_node} CPU(s)", flush=True)
        cluster.up(nodes, rates.parse(FIT_RATE, "rate"), cpus_per_node=per_node, share_cores=True,
                   progress=lambda text: print(f"  {text}", flush=True))
        try:
            RUNS.mkdir(parents=True, exist_ok=True)
            (RUNS / f"layout-{per_node}pn.json").write_text(json.dumps(cluster.describe(), indent=2))
            for name in names:
                workload, _, extra, case_rates = CASES[name]
                params = {**WORKLOADS[workload], **extra}
                cluster.shape(rates.parse(FIT_RATE, "rate"))
                sweep(cluster, RUNS / name / "fit", job(f"{name}-fit", params, FIT_COUNTS, True, 2))
                for rate in case_rates:
                    cluster.shape(rates.parse(rate, "rate"))
                    # With the breakdown too: not for the prediction (that is the fit's alone) but to show which
                    # term missed where one did (the all-reduce alone at 16, the wait).
                    sweep(cluster, RUNS / name / f"held-{rate}", job(f"{name}-{rate}", params, HELD_COUNTS, True, 1))
        finally:
            cluster.down(progress=lambda *_: None)


def archive(cases: list[str]) -> None:
    """Each measured sweep's records into RECORDS (what the analysis reads; reports are rebuilt from them)."""
    for name in cases:
        for sweep_dir in sorted((RUNS / name).glob("*")):
            for kept in KEPT:
                if (sweep_dir / kept).exists():
                    target = RECORDS / name / sweep_dir.name / kept
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes((sweep_dir / kept).read_bytes())


def restore(cases: list[str]) -> None:
    """Every sweep directory the kept records have and bench/runs/scale lacks (a clean clone), recreated."""
    for name in cases:
        for kept_dir in sorted((RECORDS / name).glob("*")):
            sweep_dir = RUNS / name / kept_dir.name
            if not (sweep_dir / "results.jsonl").exists():
                sweep_dir.mkdir(parents=True, exist_ok=True)
                for kept in KEPT:
                    if (kept_dir / kept).exists():
                        (sweep_dir / kept).write_bytes((kept_dir / kept).read_bytes())


def measured_window(cases: list[str]) -> dict:
    """When the cases' sweeps ran: their records' started_at, UTC (an --analyse-only run's own date is not it)."""
    started = [float(r["started_at"]) for name in cases for sweep_dir in sorted((RUNS / name).glob("*"))
               if (sweep_dir / results.FILENAME).exists()
               for r in results.load(sweep_dir).ok if r.get("started_at")]
    stamp = lambda t: time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))  # noqa: E731
    return {"from": stamp(min(started)), "to": stamp(max(started))} if started else {}


def recommend_what_if(fit_dir: Path, rate: str) -> dict:
    """report.json's fit of the one curve after ``orchestrator recommend`` with the rate's what-if."""
    done = subprocess.run([str(BIN), "recommend", str(fit_dir), "--bandwidth", rate, "--measured-link", FIT_RATE,
                           "--max-workers", str(max(HELD_COUNTS))], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"recommend {fit_dir} --bandwidth {rate}: rc {done.returncode}\n{done.stderr[-2000:]}")
    (entry,) = json.loads((fit_dir / "report.json").read_text())["fits"]
    return entry


def _measured_terms(records) -> dict:
    """What a held-out trial's own breakdown measured (for diagnosis only): its all-reduce alone and parts."""
    b = records[0].get("breakdown") or {}
    c = b.get("collective") or {}
    # The all-reduce alone from the stored fit by today's rule (records measured before a rule changed keep
    # their own allreduce_ms): the one Collective.seconds the breakdown uses.
    fitted = coll.from_record(c, records[0].workers, b.get("gradient_bytes"), b.get("backend")) if c else None
    alone = (1e3 * fitted.seconds(b["gradient_bytes"], coll.pipelined(b.get("backend")))
             if fitted is not None and b.get("gradient_bytes") else b.get("allreduce_ms"))
    cpu = [w["cpu_per_step_s"] for r in records for w in (r.get("per_worker") or [])
           if w.get("cpu_per_step_s") is not None]
    return {"allreduce_ms": alone, "alpha_us": 1e6 * fitted.alpha_s if fitted else c.get("alpha_us"),
            "bus_gb_per_s": fitted.bus_bytes_per_s / 1e9 if fitted else c.get("bus_gb_per_s"),
            "cpu_per_rank_ms": 1e3 * statistics.fmean(cpu) if cpu else None,
            "exposed_comm_ms": b.get("exposed_comm_ms"), "wait_ms": b.get("wait_ms"),
            "local_ms": (b.get("input_ms") or 0) + (b.get("compute_ms") or 0) if b.get("compute_ms") else None,
            "step_ms": b.get("step_ms")}


def _missed_by(predicted: dict, measured: dict, step_ms: float) -> dict:
    """Which term the prediction misses most by, from the held-out trial's own breakdown: its all-reduce
    exposed in the step, its wait, or its local step (the rest of the timed step)."""
    if measured.get("exposed_comm_ms") is None:
        return {}
    exposed = measured["exposed_comm_ms"] - predicted["exposed_comm_ms"]
    wait = (measured.get("wait_ms") or 0.0) - predicted["wait_ms"]
    rest = (step_ms - predicted["step_ms"]) - exposed - wait
    terms = {"exposed all-reduce": exposed, "wait": wait, "local step and the rest": rest}
    worst = max(terms, key=lambda k: abs(terms[k]))
    return {"term": worst, "ms": {k: round(v, 2) for k, v in terms.items()},
            "allreduce_alone_ms": measured.get("allreduce_ms"), "predicted_comm_ms": predicted["comm_ms"]}


def analyse(cases: list[str]) -> dict:
    rows = []
    for name in cases:
        workload, per_node, extra, case_rates = CASES[name]
        fit_dir = RUNS / name / "fit"
        trained = results.load(fit_dir).ok
        if not trained:
            continue
        (curve,) = scaling.curves(trained)
        curve_fit = fit.fit_curve(curve)
        if curve_fit is None:
            raise SystemExit(f"{fit_dir}: fewer than two worker counts succeeded; rerun the bench to resume it")
        model = physics.fit_curve(curve)
        for rate in case_rates:
            entry = recommend_what_if(fit_dir, rate)
            # the same what-if through the model's own functions, for its parts (diagnosis only)
            what_if = model.with_layout(physics.Layout(inter_node_bps=rates.parse(rate, "rate"),
                                                       measured_link_bps=rates.parse(FIT_RATE, "rate")))
            physical = {p["workers"]: p for p in entry["what_if"]["predicted"]}
            held = results.load(RUNS / name / f"held-{rate}").ok
            for n in HELD_COUNTS:
                mine = [r for r in held if r.workers == n]
                if not mine:
                    rows.append({"case": name, "workers": n, "rate": rate, "measured": None})
                    continue
                measured = statistics.fmean(scaling.rate(r, curve.metric) for r in mine)
                p, c = physical[n]["throughput"], curve_fit.predict(n)
                rows.append({
                    "case": name, "gradient_bytes": int(WORKLOADS[workload]["layers"] * WORKLOADS[workload]["layer_mib"] * 2**20),
                    "params": {**WORKLOADS[workload], **extra}, "workers_per_node": per_node,
                    "nodes": -(-n // per_node), "workers": n, "rate": rate, "fit_rate": FIT_RATE,
                    "fitted_on": f"{FIT_COUNTS} workers at {FIT_RATE}", "measured": measured,
                    "measured_step_ms": 1e3 * statistics.fmean(r.get("step_time_mean_s") or 0.0 for r in mine),
                    "measured_nodes": len(set(mine[0].get("nodes") or [])),
                    "physical": p, "physical_band": [physical[n]["low"], physical[n]["high"]],
                    "physical_error": (p - measured) / measured, "in_band": physical[n]["low"] <= measured <= physical[n]["high"],
                    "curve_fit_model": curve_fit.model, "curve_fit": c, "curve_fit_error": (c - measured) / measured,
                    "measured_breakdown": _measured_terms(mine),
                    "predicted_parts": what_if.parts(n),
                    "missed_by": _missed_by(what_if.parts(n), _measured_terms(mine),
                                            1e3 * statistics.fmean(r.get("step_time_mean_s") or 0.0 for r in mine)),
                    "model_chosen_without_what_if": entry["model"],
                    "model_params": (entry if entry["model"] == "physical" else entry["alternatives"]["physical"])["params"],
                })
    return {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "kernel": platform.release()},
            "command": "bench/prediction_scale.py " + " ".join(sys.argv[1:]),
            "measured": measured_window(cases),
            "fit_rate": FIT_RATE, "rates": list(RATES), "fit_counts": FIT_COUNTS, "held_counts": HELD_COUNTS,
            "compute": "emulated: device time (the CPU idle), real gradients all-reduced over gloo",
            "summary": summary(rows, cases), "points": rows}


def summary(rows: list[dict], cases: list[str]) -> dict:
    """Median and max absolute error of both families over the measured points, and by case."""
    scored = [r for r in rows if r.get("measured")]

    def errors(key, subset):
        values = [abs(r[key]) for r in subset]
        return {"median_error": statistics.median(values), "max_error": max(values)} if values else None

    return {"physical": errors("physical_error", scored), "curve_fit": errors("curve_fit_error", scored),
            "held_out_points": len(scored),
            "by_case": {c: {"physical": errors("physical_error", [r for r in scored if r["case"] == c]),
                            "curve_fit": errors("curve_fit_error", [r for r in scored if r["case"] == c])}
                        for c in cases}}


def write(data: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "prediction-scale.json").write_text(json.dumps(data, indent=2) + "\n")
    s = data["summary"]
    lines = ["# Predictions at 8-16 workers from a sweep of 1-4, on an emulated cluster of accelerator-like workers", "",
             f"Measured {data.get('measured', {}).get('from', '?')}–{data.get('measured', {}).get('to', '?')} UTC "
             f"(the records' started_at); analysed by `{data['command']}` on {data['machine']['cpus']} CPUs "
             f"(kernel {data['machine']['kernel']}). "
             "Compute was emulated (device time: the CPU idle; real gradient buckets all-reduced by DDP over gloo "
             f"across tbf-shaped links). Fitted on {data['fit_counts']} workers at {data['fit_rate']} with the step "
             "breakdown; predicted by `orchestrator recommend FIT --bandwidth RATE --measured-link "
             f"{data['fit_rate']} --max-workers 16` (physical model) and by the best curve fit on the same records.", "",
             "| case | workers | nodes | rate | measured (samples/s) | physical | error | in band | curve fit | error | "
             "missed most by (measured − predicted, ms) |",
             "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---|"]
    if data.get("carried"):
        lines[4:4] = [f"Cases {', '.join(data['carried']['cases'])}: measured and predicted on "
                      f"{data['carried']['from']} and carried with `--keep` from that run's results (not re-run).", ""]
    for r in data["points"]:
        if not r.get("measured"):
            lines.append(f"| {r['case']} | {r['workers']} | | {r['rate']} | no successful trial | | | | | | |")
            continue
        lines.append(f"| {r['case']} | {r['workers']} | {r['nodes']} | {r['rate']} | {r['measured']:,.0f} | "
                     f"{r['physical']:,.0f} | {100 * r['physical_error']:+.1f}% | {'yes' if r['in_band'] else 'no'} | "
                     f"{r['curve_fit']:,.0f} ({r['curve_fit_model']}) | {100 * r['curve_fit_error']:+.1f}% | "
                     + (f"{r['missed_by']['term']} ({r['missed_by']['ms'][r['missed_by']['term']]:+.1f})"
                        if r.get("missed_by") else "") + " |")
    if s["physical"]:
        lines += ["", f"Physical model: median error {100 * s['physical']['median_error']:.1f}%, max "
                  f"{100 * s['physical']['max_error']:.1f}%; best curve fit on the same points: median "
                  f"{100 * s['curve_fit']['median_error']:.1f}%, max {100 * s['curve_fit']['max_error']:.1f}% "
                  f"({s['held_out_points']} held-out points).", "", "| case | physical median | max | curve fit median | max |",
                  "|---|---:|---:|---:|---:|"]
        for name, e in s["by_case"].items():
            if e["physical"]:
                lines.append(f"| {name} | {100 * e['physical']['median_error']:.1f}% | {100 * e['physical']['max_error']:.1f}% | "
                             f"{100 * e['curve_fit']['median_error']:.1f}% | {100 * e['curve_fit']['max_error']:.1f}% |")
    host = [r for r in data["points"] if r.get("measured") and r["predicted_parts"].get("alpha_ms") is not None]
    if host:
        lines += ["", "The host's terms at each held-out point, the trial's own measurement against the model's "
                  "(diagnosis only): a call's latency (the microbenchmark's alpha), a rank's process CPU a step, "
                  "the local step.", "",
                  "| case | workers | rate | ranks a core | alpha measured / model (ms) | CPU a rank measured / "
                  "model (ms) | local step measured / model (ms) |", "|---|---:|---|---:|---:|---:|---:|"]

        def pair(measured, model):
            return (f"{measured:.1f} / {model:.1f} ({measured / model:.2f}x)" if measured is not None and model
                    else "")

        for r in host:
            m, p = r["measured_breakdown"], r["predicted_parts"]
            lines.append(f"| {r['case']} | {r['workers']} | {r['rate']} | {p['ranks_per_core']:g} | "
                         f"{pair(m['alpha_us'] / 1e3 if m.get('alpha_us') is not None else None, p['alpha_ms'])} | "
                         f"{pair(m.get('cpu_per_rank_ms'), p.get('cpu_per_rank_ms'))} | "
                         f"{pair(m.get('local_ms'), p['local_ms'])} |")
    (OUT / "prediction-scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help=f"comma-separated cases of {', '.join(CASES)}")
    parser.add_argument("--analyse-only", action="store_true", help="reuse the sweep directories")
    parser.add_argument("--keep", help="a previous prediction-scale.json whose cases not run now are carried")
    parser.add_argument("--keep-date", help="when --keep's points were measured (for the table)")
    args = parser.parse_args()
    cases = args.only.split(",") if args.only else list(CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"--only: unknown case(s) {unknown}; known: {', '.join(CASES)}")
    if not args.analyse_only:
        measure(cases)
        archive(cases)
    restore(list(CASES))
    data = analyse(list(CASES) if args.analyse_only and not args.only else cases)
    if args.keep:
        if not args.keep_date:
            parser.error("--keep needs --keep-date (when its points were measured)")
        data = keep(data, json.loads(Path(args.keep).read_text()), args.keep_date, set(cases))
    write(data)


def keep(data: dict, previous: dict, date: str, run: set) -> dict:
    """``data`` with the points of every case not in ``run`` taken from ``previous`` (marked with ``date``), and
    the summary recomputed over all of them."""
    carried = [{**r, "measured_on": r.get("measured_on") or date} for r in previous["points"] if r["case"] not in run]
    if not carried:
        return data
    rows = list(data["points"]) + carried
    order = list(CASES)
    rows.sort(key=lambda r: (order.index(r["case"]) if r["case"] in order else len(order)))
    cases = [c for c in order if any(r["case"] == c for r in rows)]
    data = {**data, "points": rows, "carried": {"from": date, "cases": sorted({r["case"] for r in carried})}}
    data["summary"] = summary(rows, cases)
    return data


if __name__ == "__main__":
    main()
