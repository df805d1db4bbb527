"""`orchestrator train`: one training run of a job's arm at one size, after the sweep said which.

    orchestrator train JOB --workers N [--arm torch/ddp] [--out DIR]
    orchestrator train JOB --from-report SWEEP_DIR [--arm KEY]      the recommended arm and count

The same launchers and workloads as a sweep's trials (built-in and user functions, both frameworks, Horovod,
TPU), planned by plan.training_plan: Ray Train with restarts from the latest checkpoint, TensorBoard event
files, the export, stopping at training.target where set. In DIR (default reports/<job>-train-<arm>-w<N>):

    training.json     what ran (the plan) and what it measured (throughput, accuracy, time to target,
                      restarts): the record a sweep's trial would have, with ``kind: training``
    tensorboard/ export/ ray_storage/<run name>/   event files, exported models, Ray Train's checkpoints

Resume: the run's name stays the same, so running the same command again with the same DIR (after the
driver was killed, or the cluster went down) continues from the latest checkpoint (Ray Train restores it),
the data stream from the batch after the checkpoint's step; a finished run is not trained again unless
``--fresh``, which sets the old checkpoints aside first. The plan the checkpoints were written under is kept
beside them (``PLAN``, written before training starts): a changed job (another model, learning rate, batch,
number of steps...) is refused, exit 2, with what changed, and never resumes another job's weights; --fresh
starts it over.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from orchestrator.job import plan as planning
from orchestrator.measuring import results
from orchestrator.measuring import locks
from orchestrator.running import launchers, scheduler
from orchestrator.errors import UserError
from orchestrator.running.output import Output
from orchestrator.job.spec import JobSpec

RECORD = "training.json"
PLAN = "orchestrator-plan.json"
"""Beside the run's checkpoints (in its Ray Train run directory): the plan hash and plan they were written under."""


def changed(before: dict, now: dict, prefix: str = "") -> list[str]:
    """The fields where two plans (``TrialPlan.identity()``) differ, as ``name: old -> new``."""
    out = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {json.dumps(a, default=str)[:60]} -> {json.dumps(b, default=str)[:60]}")
    return out


def resume_problem(run_dir: Path, digest: str, identity: dict) -> Optional[str]:
    """Why the checkpoints in ``run_dir`` must not be resumed by this plan, or None (none there, or its own)."""
    if not list(run_dir.glob("checkpoint_*")):
        return None
    try:
        stored = json.loads((run_dir / PLAN).read_text())
    except (OSError, ValueError):
        return (f"{run_dir} holds checkpoints whose plan is not recorded (written by an earlier orchestrator, or "
                "by hand), so they may be another job's; pass --fresh to set them aside and start over")
    if stored.get("plan_hash") == digest:
        return None
    diff = changed(stored.get("plan") or {}, identity) or ["(the plan's hash differs)"]
    return (f"{run_dir} holds checkpoints of another version of this run: {'; '.join(diff[:6])}"
            + (f" (and {len(diff) - 6} more)" if len(diff) > 6 else "")
            + "; resuming would continue the old run's weights under the new settings. Pass --fresh to set them "
            "aside and start over, or another --out to keep both")


def choose(spec: JobSpec, arm: Optional[str], workers: Optional[int], from_report: Optional[str]) -> tuple[str, int]:
    """The arm and the worker count: given, or the recommendation of ``from_report`` (for ``arm``, or its best)."""
    keys = [a.key for a in spec.arms]
    if from_report:
        if workers is not None:
            raise UserError("train --from-report takes the worker count from the report: drop --workers, or "
                            "drop --from-report")
        from orchestrator.modelling.recommend import from_report as recommended

        chosen = recommended(from_report, arm)
        if chosen.arm not in keys:
            raise UserError(f"--from-report {from_report}: recommends {chosen.arm}, which {spec.name} has no arm "
                            f"for (its arms: {', '.join(keys)}); pass the job the sweep ran")
        return chosen.arm, chosen.workers
    if workers is None:
        raise UserError("train: pass --workers N, or --from-report DIR (the size a sweep recommended)")
    if not 1 <= workers <= 4096:
        raise UserError(f"--workers {workers}: must be between 1 and 4096")
    if arm is None:
        if len(keys) > 1:
            raise UserError(f"{spec.name} has {len(keys)} arms ({', '.join(keys)}): pass --arm with one of them")
        arm = keys[0]
    if arm not in keys:
        raise UserError(f"--arm {arm!r}: {spec.name} has no such arm; its arms: {', '.join(keys)}")
    return arm, workers


def default_out(spec: JobSpec, arm: str, workers: int) -> str:
    return str(Path("reports") / f"{spec.name}-train-{arm.replace('/', '-')}-w{workers}")


def read(out_dir: str | Path) -> Optional[dict]:
    path = Path(out_dir) / RECORD
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise UserError(f"{path}: not JSON (hand-edited?); move it away to train again") from None


def run(spec: JobSpec, arm: str, workers: int, out_dir: str, address: Optional[str] = None, verbose: bool = False,
        fresh: bool = False, say: Callable[[str], None] = print, watch: Optional[Callable] = None) -> dict:
    """Train; returns the record written to DIR/training.json. Bad input raises UserError before anything starts."""
    from orchestrator.running import cluster as ray_cluster

    plan = planning.training_plan(spec, arm, workers)
    digest = scheduler.plan_hash(plan)
    output = Output(out_dir).open()
    out = output.local
    out.mkdir(parents=True, exist_ok=True)
    with locks.claim(out, "train"):  # one run writes a directory at a time; a second is refused
        before = read(out)
        if before and before.get("job") != spec.name:
            raise UserError(f"{out / RECORD} is a training run of job {before.get('job')!r}, not {spec.name!r}; pass another --out")
        storage = scheduler.storage_path(spec, output)
        if "://" in storage:
            # Checkpoints at a URI: this command cannot read a plan file beside them, or set them aside, so the
            # plan's hash is in the run's name (a changed job never meets another plan's checkpoints).
            plan = replace(plan, run_name=f"{plan.run_name}-{digest[:8]}")
            if fresh:
                raise UserError(f"--fresh: the run's checkpoints are at {storage.rstrip('/')}/{plan.run_name}, which "
                                "this command does not delete; remove that prefix to start over, or pass another --out")
        run_dir = Path(storage) / plan.run_name if "://" not in storage else None
        if before and before.get("status") == "ok" and before.get("plan_hash") == digest and not fresh:
            say(f"{plan.run_name} already trained in {out} ({RECORD}); pass --fresh to train it again")
            return before
        if run_dir is not None and not fresh:
            problem = resume_problem(run_dir, digest, plan.identity())
            if problem:
                raise UserError(problem)
        if fresh and run_dir is not None and run_dir.exists():
            aside = run_dir.with_name(f"{run_dir.name}.before-{time.strftime('%Y%m%d-%H%M%S')}")
            run_dir.rename(aside)
            say(f"--fresh: the earlier run's checkpoints are kept in {aside}")
        elif run_dir is not None and list(run_dir.glob("checkpoint_*")):
            say(f"resuming {plan.run_name} from its latest checkpoint in {run_dir}")
        if run_dir is not None:  # before anything trains: a checkpoint is never without the plan it belongs to
            run_dir.mkdir(parents=True, exist_ok=True)
            results.write_atomic(run_dir / PLAN, json.dumps({"plan_hash": digest, "plan": plan.identity()},
                                                            sort_keys=True, default=str) + "\n")
        check = getattr(launchers.get(plan.strategy), "check_installed", None)
        if check:
            check()
        cluster = ray_cluster.connect(address, verbose)
        planning.check_fits([plan], cluster.total, cluster.nodes)
        where = "embedded local Ray cluster" if cluster.embedded else f"Ray cluster at {cluster.address}"
        say(f"training {arm} at {workers} worker(s) on the {where}: {plan.steps or 'its own'} steps, restarts up to "
            f"{plan.max_failures}, a checkpoint every {plan.train_config.get('checkpoint_every') or 'report'} step(s)"
            + (f", until {plan.target['metric']} {'≥' if plan.target['mode'] == 'max' else '≤'} {plan.target['value']:g}"
               if plan.target else ""))
        record = scheduler.run_trial(plan, storage, digest, scheduler.environment(cluster), out, watch=watch)
        record.update(kind="training", run_name=plan.run_name, out=output.location, schema=results.SCHEMA_VERSION)
        results.write_atomic(out / RECORD, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        output.sync()
        problem = bad_input(record, plan)
        if problem:
            raise UserError(problem)
        return record


def bad_input(record: dict, plan) -> Optional[str]:
    """A failure that is the job's input, not the run: exit 2 with one line (the record is kept)."""
    error = record.get("error") or ""
    if "training.target:" in error and "at step 0" in error:
        return error[error.index("training.target:"):].splitlines()[0]
    target = record.get("target")
    if plan.target and target and not target.get("reached") and target.get("reported") is False:
        return (f"training.target.metric {plan.target['metric']!r}: {plan.entrypoint} never reported it to "
                "ray.train.report; report it, or set the metric to one it reports")
    return None


def progress_line(workers: list[dict], total_steps: Optional[int]) -> Optional[str]:
    """What rank 0 reported last, as one line: step, loss, samples/s, test accuracy, the target when met."""
    rank0 = [w for w in workers if w.get("rank") == 0 and w.get("records")]
    if not rank0:
        return None
    metrics = rank0[-1]["records"][-1]["metrics"]
    parts = [f"step {metrics.get('step', '?')}" + (f"/{total_steps}" if total_steps else "")]
    if isinstance(metrics.get("loss"), (int, float)):
        parts.append(f"loss {metrics['loss']:.4f}")
    times = metrics.get("step_times_s") or []
    if times and metrics.get("samples"):
        parts.append(f"{metrics['samples'] / sum(times):,.0f} samples/s a worker")
    if isinstance(metrics.get("test_accuracy"), (int, float)):
        parts.append(f"test accuracy {metrics['test_accuracy']:.3f}")
    hit = next((r["metrics"]["target_reached"] for w in rank0 for r in w["records"] if "target_reached" in r["metrics"]), None)
    if hit:
        parts.append(f"target met at step {hit['step']} ({hit['metric']} {hit['value']:.4g}, {hit['seconds']:.1f} s)")
    if len({w["started_wall"] for w in rank0}) > 1:
        parts.append(f"restarted {len(rank0) - 1}x")
    return " · ".join(parts)
