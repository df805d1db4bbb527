"""`orchestrator recommend DIR` and `share`: the analysis's recommendations, and acting on them.

The numbers come from orchestrator.modelling.analysis (fits in orchestrator/modelling/fit.py), called directly on DIR's results.
This module stores the settings beside the results, so that `orchestrator report` renders the same
recommendation again, and turns a recommendation into a Ray ScalingConfig (fixed, or elastic between the knee
and the recommended count) and the Kubernetes worker pods that hold it:

    ddp, multi_worker_mirrored, horovod   one Ray worker (pod) per worker
    mirrored                              one pod holding every replica
    tpu                                   one pod per TPU host; KubeRay replicas count slices of numOfHosts
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from orchestrator import report
from orchestrator.measuring import results
from orchestrator.modelling import analysis
from orchestrator.errors import UserError
from orchestrator.job.plan import SINGLE_WORKER_STRATEGIES, ray_workers_for
from orchestrator.report.tables import cost_lines, recommendation_lines


def _load(out: Path) -> results.Results:
    try:
        found = results.load(out)
    except ValueError as err:
        raise UserError(str(err)) from None
    if not found.records:
        raise UserError(f"{out / results.FILENAME}: no trial results; run 'orchestrator sweep' first")
    return found


def run(out_dir: str, threshold: float, max_workers: Optional[int], emit: Optional[str],
        layout: Optional[dict] = None, pricing: Optional[dict] = None) -> list[str]:
    """``layout`` (orchestrator.modelling.physics.Layout's fields): a what-if for the physical model; ``pricing``
    (prices, length, deadline_s, budget): the cost question. Both stored with the other settings so that the
    reports show them."""
    out = Path(out_dir)
    settings = {"threshold": threshold, "max_workers": max_workers, "layout": layout, "pricing": pricing}
    found = _load(out)
    data = analysis.analyze(found, settings)
    if not data["recommendations"]:
        raise UserError(f"{out}: no curve has two or more worker counts measured, or one with its step "
                        "breakdown; nothing to fit")
    if layout and any(layout.get(k) for k in ("workers_per_node", "inter_node_bps", "intra_node_bps")):
        answered = [r for r in data["recommendations"] if r.get("what_if")]
        if not answered:
            raise UserError(f"{out}: --bandwidth/--workers-per-node need the physical model, and no curve's trials "
                            "measured their step breakdown; sweep again with measure.breakdown: true")
        problems = [r["what_if"]["changes_nothing"] for r in answered]
        if all(problems):
            raise UserError(f"{out}: the what-if would change no number: {problems[0]}")
    if pricing and (data.get("cost") or {}).get("refused"):
        raise UserError(data["cost"]["refused"])
    if pricing and data.get("cost") is None:
        raise UserError("no prices: pass --price (e.g. cpu=0.04,gpu=2.5), or set pricing: in the job")
    if pricing and (pricing.get("length") or {}).get("target") and not data["time_to_target"]["rows"]:
        raise UserError(f"--to-target: no trial in {out} was timed to a target; set training.target in the job "
                        "and sweep again")
    results.write_atomic(out / report.SETTINGS, json.dumps(settings, sort_keys=True) + "\n")
    report.write(out, data)  # the same analysis `orchestrator report` renders from the stored settings
    lines = recommendation_lines(data) + cost_lines(data)
    if emit:
        results.write_atomic(emit, emitted(data, _curve_settings(found)))
        lines.append(f"wrote {emit}")
    lines.append(f"updated {out}/report.html")
    return lines


def _curve_settings(found: results.Results) -> dict[str, dict]:
    """Per arm: resources per Ray worker, the strategy, and the TPU slice, from its trials."""
    by_arm: dict[str, dict] = {}
    for record in found.records:
        by_arm.setdefault(record.arm, {"resources": dict(record.get("resources_per_worker") or {"CPU": 1.0}),
                                       "strategy": record.strategy, "tpu": record.get("tpu"),
                                       "workers": record.workers})
    return by_arm


def elastic_bounds(rec: dict) -> tuple[int, int]:
    return min(rec["knee"], rec["workers"]), max(rec["knee"], rec["workers"])


@dataclass(frozen=True)
class Pods:
    """The Kubernetes worker group that holds ``workers`` data-parallel workers of one curve."""

    replicas: int
    """KubeRay worker group replicas: pods, or TPU slices."""
    num_of_hosts: int
    pods: int
    resources_per_pod: dict


def pods_for(strategy: str, workers: int, resources_per_worker: dict, measured_workers: int,
             tpu: Optional[dict]) -> Pods:
    """Pods for ``workers`` of a curve whose trials asked ``resources_per_worker`` of each Ray worker at
    ``measured_workers`` (mirrored's one worker holds every replica, so its resources scale with N)."""
    if tpu:
        hosts = int(tpu["hosts"])
        slices = max(1, workers // hosts)
        return Pods(replicas=slices, num_of_hosts=hosts, pods=slices * hosts, resources_per_pod=dict(resources_per_worker))
    ray_workers = ray_workers_for(strategy, workers)
    per_pod = dict(resources_per_worker)
    if strategy in SINGLE_WORKER_STRATEGIES:  # one worker holds every replica: its resources grow with N
        per_pod = {k: v / measured_workers * workers for k, v in resources_per_worker.items()}
    return Pods(replicas=ray_workers, num_of_hosts=1, pods=ray_workers, resources_per_pod=per_pod)


def emitted(data: dict, curve_settings: dict) -> str:
    document = {}
    for rec in data["recommendations"]:
        key = rec["name"]
        known = curve_settings.get(key, {"resources": {"CPU": 1.0}, "strategy": rec["strategy"], "tpu": None,
                                         "workers": 1})
        low, high = elastic_bounds(rec)
        pods = pods_for(known["strategy"], rec["workers"], known["resources"], known["workers"], known["tpu"])
        most = pods_for(known["strategy"], high, known["resources"], known["workers"], known["tpu"])

        def common():
            per_worker = pods.resources_per_pod
            return {"resources_per_worker": dict(per_worker), "use_gpu": per_worker.get("GPU", 0) > 0}

        kubernetes = {"replicas": pods.replicas, "minReplicas": pods.replicas, "maxReplicas": most.replicas,
                      "pods": pods.pods}
        if pods.num_of_hosts > 1:
            kubernetes["numOfHosts"] = pods.num_of_hosts
        document[key] = {
            # ray.train.ScalingConfig(**scaling_config): Ray workers, which for mirrored is one holding N replicas
            "scaling_config": {"num_workers": ray_workers_for(known["strategy"], rec["workers"]), **common()},
            # Ray Train V2 elastic training: num_workers=(min, max)
            "elastic_scaling_config": {"num_workers": [ray_workers_for(known["strategy"], low),
                                                       ray_workers_for(known["strategy"], high)], **common()},
            # orchestrator k8s render --from-report DIR --curve KEY renders this worker group
            "kubernetes": kubernetes,
            "workers": rec["workers"],
            "predicted_efficiency": round(rec["predicted_efficiency"], 4),
            "predicted_throughput": round(rec["predicted_throughput"], 3),
            "band": [round(v, 3) for v in rec["band"]],
            "unit": rec.get("unit"),
            "model": rec.get("model"),
            "threshold": rec["threshold"],
        }
        if rec.get("what_if"):  # beside the measured recommendation, never in its place
            answer = rec["what_if"]
            document[key]["what_if"] = {
                "layout": {k: v for k, v in answer["layout"].items() if v is not None},
                "workers": answer["workers"],
                "predicted_efficiency": round(answer["predicted_efficiency"], 4),
                "predicted_throughput": round(answer["predicted_throughput"], 3),
                "band": [round(v, 3) for v in answer["band"]], "assumptions": answer["assumptions"]}
    header = "# Recommended worker counts, from `orchestrator recommend` on results.jsonl.\n"
    return header + yaml.safe_dump(document, sort_keys=True)


@dataclass(frozen=True)
class Chosen:
    """What `k8s render --from-report` renders: one curve's arm at its recommended count."""

    arm: str
    workers: int
    max_workers: int


def best_recommendation(data: dict) -> dict:
    """The verdict's best curve's recommendation; with no verdict, the one with the most predicted throughput
    among the curves whose model fits them better than their mean (all of them where none does)."""
    best_label = (data.get("verdict") or {}).get("best")
    best = next((r for r in data["recommendations"] if r["label"] == best_label), None)
    if best is None:
        borne_out = [r for r in data["recommendations"] if not r.get("fit_below_mean")] or data["recommendations"]
        best = max(borne_out, key=lambda r: r["predicted_throughput"])
    return best


def from_report(out_dir: str, curve: Optional[str]) -> Chosen:
    """The recommendation of ``curve`` (default: ``best_recommendation``), computed from DIR's results with the
    settings `recommend` stored."""
    out = Path(out_dir)
    if not out.is_dir():
        raise UserError(f"--from-report {out_dir}: no such directory; pass the --out directory of a sweep")
    data = analysis.analyze(_load(out), report.read_settings(out))
    recs = {r["name"]: r for r in data["recommendations"]}
    if not recs:
        raise UserError(f"--from-report {out_dir}: the report holds no recommendation (fewer than two worker counts measured)")
    if curve is None:
        best = best_recommendation(data)
    elif curve in recs:
        best = recs[curve]
    else:
        raise UserError(f"--curve {curve!r}: not in the report; known: {', '.join(sorted(recs))}")
    return Chosen(arm=best["name"], workers=best["workers"], max_workers=elastic_bounds(best)[1])


def share(out_dirs: list[str], cpus: float) -> list[dict]:
    """Plan a shared cluster of ``cpus`` CPUs for several swept jobs: workers per job maximising the sum of
    predicted throughput relative to each job's 1-worker throughput (orchestrator.modelling.fit.allocate). Each job
    runs its best curve (highest predicted throughput at its largest measured count; curves in different
    units are each relative to their own 1 worker, so any of them can be chosen)."""
    from orchestrator.modelling import fit, scaling

    jobs, meta = {}, {}
    for number, directory in enumerate(out_dirs, 1):
        found = _load(Path(directory))
        if not found.ok:
            raise UserError(f"{directory}: no successful trials in results.jsonl")
        best = None
        for curve in scaling.curves(found.ok):
            model = fit.fit_curve(curve)
            if model is None:
                continue
            score = model.predict(model.measured[-1]) / model.predict(1)
            if best is None or score > best[2]:
                best = (curve, model, score)
        if best is None:
            raise UserError(f"{directory}: no curve has two or more worker counts measured; nothing to fit")
        curve, model, _ = best
        row = curve.records[0]
        name = f"{number}. {row.job}"
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
