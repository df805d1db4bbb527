"""Predictions at other worker counts and link rates, proven on an emulated multi-node cluster (one machine,
network namespaces, tbf-shaped links: orchestrator/running/emulated.py). Needs root.

    .venv/bin/python bench/prediction_emulated.py [--repeats 2] [--rates 100mbit,300mbit,1gbit] [--fit-rate 300mbit]

For each model (the default MLP, and one with a ~12x larger gradient), torch DDP, one worker per node:
  2 nodes: 1 worker (once), 2 workers at every rate;  3 nodes (--share-cores on this 2-core machine): 3 workers
  at every rate. Each configuration is its own sweep directory under bench/runs/emulated/ (rerunning the
  bench resumes them: done trials are kept); their records (results.jsonl, job.yaml) and which is which
  (dirs.json) are committed in bench/results/prediction-emulated-records/, from which ``--analyse-only``
  refits on a clean clone (the rates and the fit rate are then the records', not the flags').
Fit on 1 and 2 workers at the fit rate; predict every other (workers, rate) point with the physical model
through the product's own path (`orchestrator recommend FIT --bandwidth RATE --measured-link FIT_RATE`, the
physical model's what-if in report.json) and with the best curve fit (orchestrator/modelling/fit.py), which knows nothing
of the rate. The 3-worker points run three nodes on two cores: the workers record their CPU per step and the
cores they may use, which the model's host-CPU term reads (nothing is told to it by hand).

Writes bench/results/prediction-emulated.json and .md. Not a test: it reports, it asserts nothing.
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
from orchestrator.measuring import results
from orchestrator.modelling import fit, scaling
from orchestrator.running import emulated

OUT = ROOT / "bench/results"
RUNS = ROOT / "bench/runs/emulated"  # the sweeps themselves (git-ignored); their inputs are in the JSON
# What the analysis reads, committed: each sweep's results.jsonl and job.yaml, and dirs.json naming which sweep is
# which (model, workers, rate) and the layouts. --analyse-only restores bench/runs/emulated from it (a clean clone).
RECORDS = OUT / "prediction-emulated-records"
KEPT = ("results.jsonl", "job.yaml")
MODELS = {"mlp-128x128": [128, 128], "mlp-512x512": [512, 512]}


def job(name: str, hidden: list[int], workers: int, repeats: int) -> dict:
    return {
        "name": name, "arms": [{"framework": "torch", "strategy": "ddp"}],
        "workload": {"model": "mlp", "params": {"hidden": hidden}}, "dataset": {"name": "digits"},
        "batch": {"per_worker": 64, "scaling": "weak"},
        "training": {"steps": 150, "warmup_steps": 20, "report_every": 50},
        "sweep": {"workers": [workers], "repeats": repeats}, "resources": {"cpus_per_worker": 1},
        "measure": {"breakdown": True}, "deploy": {"export": False}, "launcher": "actors",
    }


def sweep(cluster: emulated.Emulated, model: str, workers: int, rate: str, repeats: int) -> Path:
    out = RUNS / f"{model}-w{workers}-{rate}"
    out.mkdir(parents=True, exist_ok=True)
    spec = out / "job.yaml"
    # One job name for every count and rate: the 1- and 2-worker sweeps at the fit rate make one curve (its
    # points share a curve_hash, which the job's name is part of), as one sweep of [1, 2] would.
    spec.write_text(yaml.safe_dump(job(model, MODELS[model], workers, repeats)))
    started = time.monotonic()
    done = subprocess.run([str(ROOT / ".venv/bin/orchestrator"), "sweep", str(spec), "--out", str(out),
                           "--address", cluster.data["gcs_address"]],
                          env={**cluster.ray_env(), **cluster.env}, capture_output=True, text=True, cwd=ROOT)
    print(f"  {out.name}: rc {done.returncode} in {time.monotonic() - started:.0f} s", flush=True)
    if done.returncode not in (0, 1):
        print(done.stderr[-2000:], file=sys.stderr)
    return out


def measure(args) -> dict:
    """Run (or resume) every configuration; the directories by (model, workers, rate)."""
    dirs: dict = {}
    state = Path("/tmp/orchestrator-emulated-bench")
    for nodes in (2, 3):
        cluster = emulated.Emulated(state)
        cluster.down(progress=lambda *_: None)  # a previous run's, if it was killed
        cluster = emulated.Emulated(state)
        print(f"emulated cluster: {nodes} nodes", flush=True)
        cluster.up(nodes, rates.parse(args.fit_rate, "--fit-rate"), share_cores=nodes > (os.cpu_count() or 1),
                   progress=lambda text: print(f"  {text}", flush=True))
        layout = cluster.describe()
        try:
            for rate in args.rates:
                cluster.shape(rates.parse(rate, "--rates"))
                for model in MODELS:
                    if nodes == 2 and rate == args.fit_rate:
                        dirs[(model, 1, rate)] = sweep(cluster, model, 1, rate, args.repeats)
                    dirs[(model, nodes, rate)] = sweep(cluster, model, nodes, rate, args.repeats)
        finally:
            cluster.down(progress=lambda *_: None)
        dirs[("layout", nodes)] = layout
    return dirs


def _encode(dirs: dict) -> dict:
    """dirs with each sweep directory by its name under RUNS (so the file holds no machine's absolute path)."""
    return {json.dumps(list(k)): (Path(v).name if isinstance(v, (str, Path)) else v) for k, v in dirs.items()}


def _decode(encoded: dict) -> dict:
    return {tuple(json.loads(k)): (RUNS / Path(v).name if isinstance(v, str) else v) for k, v in encoded.items()}


def archive(dirs: dict) -> None:
    """Each measured sweep's records, and which is which, into RECORDS."""
    for key, sweep_dir in dirs.items():
        if not isinstance(sweep_dir, Path):
            continue
        for kept in KEPT:
            if (sweep_dir / kept).exists():
                target = RECORDS / sweep_dir.name / kept
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes((sweep_dir / kept).read_bytes())
    (RECORDS / "dirs.json").write_text(json.dumps(_encode(dirs), indent=1) + "\n")


def restore() -> dict:
    """The sweep directories RECORDS has and bench/runs/emulated lacks, recreated; the dirs they make up."""
    index = RECORDS / "dirs.json"
    if not index.exists():
        raise SystemExit(f"--analyse-only: no kept records at {index}; run the bench without --analyse-only first")
    dirs = _decode(json.loads(index.read_text()))
    for sweep_dir in (v for v in dirs.values() if isinstance(v, Path)):
        # always the committed records: a local sweep of an older run is not what the results quote
        sweep_dir.mkdir(parents=True, exist_ok=True)
        for kept in KEPT:
            if (RECORDS / sweep_dir.name / kept).exists():
                (sweep_dir / kept).write_bytes((RECORDS / sweep_dir.name / kept).read_bytes())
    return dirs


def measured_rates(dirs: dict) -> tuple[list[str], str]:
    """(the rates, the fit rate) the kept sweeps ran at: the fit rate is the one with the 1-worker sweeps."""
    keys = [k for k in dirs if k[0] != "layout"]
    fit_rates = {k[2] for k in keys if k[1] == 1}
    if len(fit_rates) != 1:
        raise SystemExit(f"{RECORDS / 'dirs.json'}: expected 1-worker sweeps at one rate, found {sorted(fit_rates)}")
    return sorted({k[2] for k in keys}, key=lambda r: rates.parse(r, "rate")), fit_rates.pop()


def measured_window(dirs: dict) -> dict:
    """When the sweeps ran (their records' started_at, UTC) and the cluster's CPUs they saw."""
    started, cpus = [], set()
    for sweep_dir in (v for v in dirs.values() if isinstance(v, Path)):
        for r in _records(sweep_dir):
            if r.get("started_at"):
                started.append(float(r["started_at"]))
            cpus.add((r.get("environment") or {}).get("cluster_cpus"))
    stamp = lambda t: time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))  # noqa: E731
    return {"from": stamp(min(started)), "to": stamp(max(started)), "cluster_cpus": sorted(c for c in cpus if c)} \
        if started else {}


def _records(path: Path) -> list:
    return results.load(path).ok


def _fit_dir(model: str, dirs: dict, fit_rate: str) -> Path:
    """The 1- and 2-worker sweeps at the fit rate in one directory, as one sweep of [1, 2] would leave it."""
    combined = RUNS / f"{model}-fit-{fit_rate}"
    combined.mkdir(parents=True, exist_ok=True)
    lines = []
    for workers in (1, 2):
        lines += (Path(dirs[(model, workers, fit_rate)]) / results.FILENAME).read_text().splitlines()
    (combined / results.FILENAME).write_text("\n".join(lines) + "\n")
    return combined


def _what_if(fit_dir: Path, rate: str, fit_rate: str) -> dict:
    """report.json's fit after `orchestrator recommend` with the rate's what-if, as a user runs it."""
    done = subprocess.run([str(ROOT / ".venv/bin/orchestrator"), "recommend", str(fit_dir), "--bandwidth", rate,
                           "--measured-link", fit_rate, "--max-workers", "3"], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"recommend {fit_dir} --bandwidth {rate}: rc {done.returncode}\n{done.stderr[-2000:]}")
    (entry,) = json.loads((fit_dir / "report.json").read_text())["fits"]
    return entry


def analyse(args, dirs: dict) -> dict:
    rows = []
    for model in MODELS:
        fit_dir = _fit_dir(model, dirs, args.fit_rate)
        train = _records(fit_dir)
        curve = next(iter(scaling.curves(train)))
        curve_fit = fit.fit_curve(curve)
        answers = {rate: _what_if(fit_dir, rate, args.fit_rate) for rate in args.rates}
        for (name, workers, rate), path in sorted((k, v) for k, v in dirs.items() if k[0] == model):
            if workers == 1 or (workers == 2 and rate == args.fit_rate):
                continue
            held = _records(Path(path))
            if not held:
                rows.append({"model": model, "workers": workers, "rate": rate, "measured": None,
                             "error": "no successful trial"})
                continue
            measured = statistics.fmean(scaling.rate(r, curve.metric) for r in held)
            point = next(p for p in answers[rate]["what_if"]["predicted"] if p["workers"] == workers)
            predicted, low, high = point["throughput"], point["low"], point["high"]
            by_fit = curve_fit.predict(workers)
            held_parts = [r.get("breakdown") or {} for r in held]
            rows.append({
                "model": model, "workers": workers, "rate": rate, "rate_bps": rates.parse(rate, "rate"),
                "nodes": workers, "fitted_on": f"1 and 2 workers at {args.fit_rate}",
                "predicted_by": f"orchestrator recommend FIT --bandwidth {rate} --measured-link {args.fit_rate}",
                "measured": measured, "repeats": len(held),
                "physical": predicted, "physical_band": [low, high], "physical_error": (predicted - measured) / measured,
                "curve_fit_model": curve_fit.model, "curve_fit": by_fit, "curve_fit_error": (by_fit - measured) / measured,
                "measured_parts": {k: statistics.fmean(p.get(k) or 0.0 for p in held_parts)
                                   for k in ("input_ms", "compute_ms", "exposed_comm_ms", "wait_ms", "step_ms")},
                "measured_bus_gb_per_s": statistics.fmean(((p.get("collective") or {}).get("bus_gb_per_s") or 0.0)
                                                          for p in held_parts),
            })
    scored = [r for r in rows if r.get("measured")]

    def errors(key):
        values = [abs(r[key]) for r in scored]
        return {"median_error": statistics.median(values), "max_error": max(values)} if values else None

    return {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "kernel": platform.release()},
            "command": "bench/prediction_emulated.py " + " ".join(sys.argv[1:]),
            "measured": measured_window(dirs),
            "fit_rate": args.fit_rate, "rates": args.rates,
            "repeats": max((r.get("repeats") or 0 for r in rows), default=0),
            "layouts": {str(k[1]): v for k, v in dirs.items() if k[0] == "layout"},
            "summary": {"physical": errors("physical_error"), "curve_fit": errors("curve_fit_error"),
                        "held_out_points": len(scored)},
            "points": rows}


def write(data: dict) -> None:
    (OUT / "prediction-emulated.json").write_text(json.dumps(data, indent=2) + "\n")
    s = data["summary"]
    lines = ["# Predictions on an emulated multi-node cluster (held-out worker counts and link rates)", "",
             f"Measured {data['measured'].get('from', '?')}–{data['measured'].get('to', '?')} UTC (the records' "
             f"started_at), analysed by `{data['command']}` on {data['machine']['cpus']} CPUs (kernel "
             f"{data['machine']['kernel']}): torch DDP on digits, one worker per network namespace, every node's veth shaped with tbf at the rate. "
             f"Fitted on 1 and 2 workers at {data['fit_rate']}; {data['repeats']} repeat(s) per point; predicted by "
             "`orchestrator recommend FIT --bandwidth RATE --measured-link FIT_RATE` (nothing else told to the model). "
             "3 workers run 3 nodes on 2 cores: the model reads the workers' CPU per step and cores from the records "
             "(its host-CPU term); nothing is told to it by hand.", "",
             "| model | workers | rate | measured (samples/s) | physical | error | curve fit | error | measured busbw |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in data["points"]:
        if not r.get("measured"):
            lines.append(f"| {r['model']} | {r['workers']} | {r['rate']} | {r.get('error')} | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['workers']} | {r['rate']} | {r['measured']:,.0f} | {r['physical']:,.0f} | "
                     f"{100 * r['physical_error']:+.1f}% | {r['curve_fit']:,.0f} ({r['curve_fit_model']}) | "
                     f"{100 * r['curve_fit_error']:+.1f}% | {8 * r['measured_bus_gb_per_s'] * 1e3:,.0f} Mbit/s |")
    if s["physical"]:
        lines += ["", f"Physical model: median error {100 * s['physical']['median_error']:.1f}%, "
                  f"max {100 * s['physical']['max_error']:.1f}%. Best curve fit on the same points: median "
                  f"{100 * s['curve_fit']['median_error']:.1f}%, max {100 * s['curve_fit']['max_error']:.1f}% "
                  f"({s['held_out_points']} held-out points)."]
    (OUT / "prediction-emulated.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rates", default="100mbit,300mbit,1gbit")
    parser.add_argument("--fit-rate", default="300mbit")
    parser.add_argument("--analyse-only", action="store_true", help="reuse the sweep directories")
    args = parser.parse_args()
    args.rates = args.rates.split(",")
    if args.analyse_only:
        dirs = restore()
        args.rates, args.fit_rate = measured_rates(dirs)
    else:
        dirs = measure(args)
        archive(dirs)
    write(analyse(args, dirs))


if __name__ == "__main__":
    main()
