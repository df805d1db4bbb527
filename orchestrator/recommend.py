"""`orchestrator recommend DIR`: fit DIR's curves, recommend worker counts, and act on them.

The numbers come from report.build (orchestrator/fit.py); this module stores the settings beside the results
so that `orchestrator report` renders the same recommendation again, and turns a recommendation into a Ray
ScalingConfig (fixed, or elastic between the knee and the recommended count) and Kubernetes replicas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import yaml

from orchestrator import report, results
from orchestrator.errors import UserError
from orchestrator.report.tables import recommendation_lines
from orchestrator.spec import execution_key


def run(out_dir: str, threshold: float, max_workers: Optional[int], emit: Optional[str]) -> list[str]:
    out = Path(out_dir)
    settings = {"threshold": threshold, "max_workers": max_workers}
    results.write_atomic(out / report.SETTINGS, json.dumps(settings, sort_keys=True) + "\n")
    report.render(out)
    data = json.loads((out / "report.json").read_text())
    if not data["recommendations"]:
        raise UserError(f"{out}: no curve has two or more worker counts measured; nothing to fit")
    lines = recommendation_lines(data)
    if emit:
        results.write_atomic(emit, emitted(data, _resources(out)))
        lines.append(f"wrote {emit}")
    lines.append(f"updated {out}/report.html")
    return lines


def _resources(out: Path) -> dict:
    by_curve = {}
    for record in results.read(out):
        key = execution_key(record["framework"], record["strategy"], record.get("execution"))
        by_curve.setdefault(key, record.get("resources_per_worker") or {"CPU": 1.0})
    return by_curve


def elastic_bounds(rec: dict) -> tuple[int, int]:
    return min(rec["knee"], rec["workers"]), max(rec["knee"], rec["workers"])


def emitted(data: dict, resources: dict) -> str:
    document = {}
    for rec in data["recommendations"]:
        key = rec["name"]
        per_worker = resources.get(key, {"CPU": 1.0})
        low, high = elastic_bounds(rec)
        def common():
            return {"resources_per_worker": dict(per_worker), "use_gpu": per_worker.get("GPU", 0) > 0}

        document[key] = {
            # ray.train.ScalingConfig(**scaling_config)
            "scaling_config": {"num_workers": rec["workers"], **common()},
            # Ray Train V2 elastic training: num_workers=(min, max)
            "elastic_scaling_config": {"num_workers": [low, high], **common()},
            # orchestrator k8s render --from-report DIR --curve KEY writes these
            "kubernetes": {"replicas": rec["workers"], "minReplicas": rec["workers"], "maxReplicas": high},
            "predicted_efficiency": round(rec["predicted_efficiency"], 4),
            "threshold": rec["threshold"],
        }
    header = "# Recommended worker counts, from `orchestrator recommend` on results.jsonl.\n"
    return header + yaml.safe_dump(document, sort_keys=True)


def scale_from_report(out_dir: str, curve: Optional[str]) -> tuple[int, int]:
    path = Path(out_dir) / "report.json"
    if not path.exists():
        raise UserError(f"--from-report {out_dir}: no report.json; run `orchestrator recommend {out_dir}` first")
    data = json.loads(path.read_text())
    recs = {r.get("name") or f"{r['framework']}/{r['strategy']}": r for r in data.get("recommendations", [])}
    if not recs:
        raise UserError(f"--from-report {out_dir}: the report holds no recommendation (fewer than two worker counts measured)")
    if curve is None:
        best = max(recs.values(), key=lambda r: r["predicted_throughput"])
    elif curve in recs:
        best = recs[curve]
    else:
        raise UserError(f"--curve {curve!r}: not in the report; known: {', '.join(sorted(recs))}")
    return best["workers"], elastic_bounds(best)[1]


def share(out_dirs: list[str], cpus: float) -> list[dict]:
    """Plan a shared cluster of ``cpus`` CPUs for several swept jobs: workers per job maximising the sum of
    predicted throughput relative to each job's 1-worker throughput (orchestrator.fit.allocate). Each job
    runs its best curve (highest predicted throughput at its largest measured count)."""
    from orchestrator import fit

    jobs, meta = {}, {}
    for number, directory in enumerate(out_dirs, 1):
        records = [r for r in results.read(directory) if r.get("status") == "ok"]
        if not records:
            raise UserError(f"{directory}: no successful trials in results.jsonl")
        best = None
        for curve, rows, model in fit.fit_curves(records):
            if model and (best is None or model.predict(model.measured[-1]) > best[1].predict(best[1].measured[-1])):
                best = (curve, model, rows[0])
        if best is None:
            raise UserError(f"{directory}: no curve has two or more worker counts measured; nothing to fit")
        curve, model, row = best
        name = f"{number}. {row['job']}"
        per_worker = (row.get("resources_per_worker") or {}).get("CPU", 1.0)
        jobs[name] = (model, per_worker)
        meta[name] = curve.label
    allocation = fit.allocate(jobs, cpus)
    plan = []
    for name, workers in allocation.items():
        model, per_worker = jobs[name]
        relative = model.predict(workers) / model.predict(1) if workers else 0.0
        plan.append({"job": name, "curve": meta[name], "cpus_per_worker": per_worker, "workers": workers,
                     "cpus": workers * per_worker, "relative_throughput": relative,
                     "efficiency": relative / workers if workers else 0.0})
    return plan
