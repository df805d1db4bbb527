"""The sweep: plans -> trials on one Ray cluster -> results.jsonl -> reports.

Every trial of a sweep runs in the same Ray session. Each finished trial (successful or not) is appended
to results.jsonl at once, so an interrupted sweep resumes where it stopped: trials already in the file
with the same plan are skipped.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import traceback
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional

from orchestrator import __version__, report
from orchestrator.job import plan as planning
from orchestrator.measuring import artifacts, measure, results
from orchestrator.measuring import locks
from orchestrator.running import launchers
from orchestrator.errors import TrialError, UserError
from orchestrator.running.output import Output
from orchestrator.job.plan import TrialPlan
from orchestrator.job.spec import JobSpec


@dataclass
class SweepOutcome:
    out_dir: Path
    ran: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.ran if r["status"] != "ok"]


def plan_hash(plan: TrialPlan) -> str:
    """What makes two trials the same trial: everything in the plan."""
    return hashlib.sha256(json.dumps(plan.identity(), sort_keys=True).encode()).hexdigest()[:16]


def storage_path(spec: JobSpec, out: Output) -> str:
    """Ray Train's storage_path: the spec's (a local path or a URI), else beside the results."""
    if spec.storage_path:
        return spec.storage_path if "://" in spec.storage_path else str(Path(spec.storage_path).resolve())
    return out.storage_default()


def versions(*packages: str) -> dict[str, str]:
    """Installed versions by distribution name ("not installed" where absent); "tensorflow" is tensorflow-cpu
    where that is the one installed."""
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    found = {p: version(p) for p in packages}
    if found.get("tensorflow") == "not installed":
        found["tensorflow"] = version("tensorflow-cpu")
    return found


def environment(cluster) -> dict:
    return {
        "orchestrator": __version__,
        "python": platform.python_version(),
        **versions("ray", "torch", "tensorflow"),
        "machine": platform.machine(),
        "cluster_nodes": len(cluster.nodes),
        "cluster_cpus": cluster.total.get("CPU", 0.0),
        "cluster_gpus": cluster.total.get("GPU", 0.0),
        "embedded_cluster": cluster.embedded,
    }


class Progress:
    """What the sweep tells whoever watches it. The CLI passes a rich-backed one."""

    def start(self, total: int) -> None: ...
    def trial_started(self, plan: TrialPlan, index: int) -> None: ...
    def trial_skipped(self, plan: TrialPlan) -> None: ...
    def trial_ended(self, plan: TrialPlan, record: dict) -> None: ...
    def note(self, text: str) -> None: ...
    def stop(self) -> None: ...


def unit_notes(plans: list[TrialPlan]) -> list[str]:
    """What the sweep says at its start about arms whose throughput is not samples/s."""
    arms = sorted({p.arm for p in plans if p.samples_metric is None})
    if not arms:
        return []
    return [f"{', '.join(arms)}: no sample count (workload.samples_metric unset), so throughput is reports/s, "
            "timed between the function's ray.train.report calls; the report compares these arms with others by "
            "speedup and efficiency only, not by throughput"]


def launcher_notes(plans: list[TrialPlan]) -> list[str]:
    """Per arm, the launcher its trials use and why, and whether its repeats share worker processes."""
    notes = {}
    repeats = 1 + max((p.repeat for p in plans), default=0)
    for p in plans:
        if p.arm not in notes:
            notes[p.arm] = f"{p.arm}: launcher {p.launcher}: {p.launcher_reason}.{_processes_note(p, repeats)}"
    return list(notes.values())


def _processes_note(p: TrialPlan, repeats: int) -> str:
    if p.worker_group:
        return " Repeats of each worker count run in the same worker processes."
    if repeats < 2:
        return ""
    why = planning.fresh_processes_reason(p.launcher, p.strategy, planning.builtin_entrypoint(p.entrypoint))
    return f" Each repeat starts fresh worker processes: {why}."


def missing_samples_note(plan: TrialPlan, record: dict) -> Optional[str]:
    """Said once per arm whose function did not report the job's samples_metric: its unit is reports/s."""
    if plan.samples_metric and record.get("status") == "ok" and record.get("samples_per_sec") is None:
        return (f"{plan.arm} did not report {plan.samples_metric!r} (workload.samples_metric) in every report: its "
                "throughput is reports/s, compared with other arms by speedup and efficiency only")
    return None


def check_out_dir(spec: JobSpec, out_dir: Path) -> list[dict]:
    existing = results.read(out_dir)
    other = {r.get("job") for r in existing} - {spec.name}
    if other:
        raise UserError(
            f"{out_dir / results.FILENAME} holds results of job {sorted(other)[0]!r}, not {spec.name!r}; "
            "pass another --out"
        )
    return existing


def sweep(
    spec: JobSpec,
    out_dir: str | Path | Output,
    address: Optional[str] = None,
    verbose: bool = False,
    progress: Optional[Progress] = None,
    on_cluster: Optional[Callable] = None,
) -> SweepOutcome:
    progress = progress or Progress()
    run_id, run_started = uuid.uuid4().hex[:12], time.time()  # before Ray: its start is the sweep's own time
    output = (out_dir if isinstance(out_dir, Output) else Output(str(out_dir))).open()
    out = output.local
    with locks.claim(out, "sweep"):  # one sweep writes a directory at a time; a second is refused
        return _sweep(spec, output, out, address, verbose, progress, on_cluster, run_id, run_started)


def _sweep(spec: JobSpec, output: Output, out: Path, address: Optional[str], verbose: bool, progress: Progress,
           on_cluster: Optional[Callable], run_id: str, run_started: float) -> SweepOutcome:
    from orchestrator.running import cluster as ray_cluster

    last_end = [run_started]
    try:
        existing = check_out_dir(spec, out)
    except ValueError as err:
        raise UserError(str(err)) from None
    torn = results.scan(out).torn_note(out / results.FILENAME)
    if torn:
        progress.note(torn)
    done = results.completed(existing)  # the latest record of each trial id, where it succeeded
    plans = planning.build(spec)
    for strategy in sorted({plan.strategy for plan in plans}):
        check = getattr(launchers.get(strategy), "check_installed", None)
        if check:
            check()

    cluster = ray_cluster.connect(address, verbose)
    planning.check_fits(plans, cluster.total, cluster.nodes)
    storage = storage_path(spec, output)
    if on_cluster:
        on_cluster(cluster, storage)
    env = environment(cluster)

    outcome = SweepOutcome(out_dir=out)
    extra = {"adaptive": {"candidates": spec.sweep.workers, "repeats": spec.sweep.repeats}} if spec.sweep.adaptive else {}

    noted: set[str] = set()
    from orchestrator.running import trial

    runner = trial.Runner()  # one recorder for the sweep; a worker group's processes kept for its next repeat

    def run(plan: TrialPlan, index: int) -> dict:
        digest = plan_hash(plan)
        before = done.get(plan.trial_id)
        # The same plan, measured as a point of the same curve (a record from before curve hashes counts): done.
        if before is not None and before.get("plan_hash") == digest and \
                before.get("curve_hash") in (None, plan.curve_hash):
            outcome.skipped.append(plan.trial_id)
            progress.trial_skipped(plan)
            return dict(done[plan.trial_id].data)
        progress.trial_started(plan, index)
        record = {**run_trial(plan, storage, digest, env, out, runner=runner), **extra}
        launched = record.get("launched_at", record["started_at"])  # a failed trial's wall runs from started_at
        record["sweep_run"] = results.sweep_run(run_id, run_started, launched - last_end[0])
        last_end[0] = launched + record["wall_time_s"]
        results.append(out, record)
        output.sync(record.get("artifacts", {}).get("files", []))
        outcome.ran.append(record)
        progress.trial_ended(plan, record)
        missing = missing_samples_note(plan, record)
        if missing and plan.arm not in noted:
            noted.add(plan.arm)
            progress.note(missing)
        return record

    progress.start(len(plans))
    try:
        if spec.sweep.adaptive:
            outcome.decisions = _adaptive_sweep(spec, plans, run, progress)
        else:
            for index, plan in enumerate(plans):
                run(plan, index)
    finally:
        runner.close()
        progress.stop()
    outcome.reports = report.render(out)
    output.sync()
    return outcome


def _adaptive_sweep(spec: JobSpec, plans: list[TrialPlan], run: Callable, progress: Progress) -> list[str]:
    """Per arm, measure worker counts in the order orchestrator.modelling.adaptive chooses, all repeats of a count at a
    time, until its recommendation is stable. Arms take turns, so they see the same machine."""
    from orchestrator.modelling import adaptive

    arms: dict[str, dict[int, list[TrialPlan]]] = {}
    for plan in plans:
        arms.setdefault(plan.arm, {}).setdefault(plan.workers, []).append(plan)
    history = {arm: [] for arm in arms}
    measured = {arm: {} for arm in arms}
    failed = {arm: set() for arm in arms}
    open_arms = list(arms)
    decisions, index = [], 0
    while open_arms:
        for arm in list(open_arms):
            candidates = [n for n in spec.sweep.workers if n not in failed[arm]]
            decision = adaptive.decide(candidates, measured[arm], spec.sweep.threshold, history[arm])
            if decision.recommended is not None:
                history[arm].append(decision.recommended)
            label = arm
            if decision.next_workers is None:
                open_arms.remove(arm)
                decisions.append(f"{label}: stopped, {decision.reason}")
                continue
            decisions.append(f"{label}: {decision.reason}")
            rates = []
            for plan in arms[arm][decision.next_workers]:
                record = run(plan, index)
                index += 1
                trial = results.parse(record)
                if trial.ok:
                    # One arm is one unit: its plans all count samples, or none of them does.
                    rates.append(trial.throughput)
            if rates:
                measured[arm][decision.next_workers] = rates
            else:
                failed[arm].add(decision.next_workers)
    return decisions


def run_trial(plan: TrialPlan, storage: str, digest: str, env: dict, out_dir: Optional[Path] = None,
              watch: Optional[Callable] = None, runner=None) -> dict:
    """Run one trial and return its results.jsonl record; a failure is recorded, not raised. ``runner``: the
    sweep's trial.Runner (its recorder, its kept workers); a lone trial gets one of its own."""
    from orchestrator.running import trial

    record = {
        "trial_id": plan.trial_id,
        "plan_hash": digest,
        **{k: v for k, v in plan.to_dict().items() if k not in ("trial_id", "train_config", "env", "controller_env")},
        "environment": env,
    }
    if plan.execution is not None:  # a built-in workload: its training step, measured in lines
        from orchestrator.measuring import loc

        record["step_lines"] = loc.training_step(plan.framework)
    started = time.time()
    saved: dict = {}
    try:
        run = (runner.run if runner is not None else trial.run)(plan, storage, watch=watch)
        if run.reuse is not None:
            record["worker_reuse"] = results.worker_reuse(run.reuse)
        if out_dir is not None:  # a failed trial's files too: nothing a worker wrote is lost
            saved = artifacts.save(out_dir, plan.trial_id, run.files, run.skipped_files)
        if run.error is not None:
            raise run.error
        summary = measure.summarize(run.workers, plan.warmup_steps, plan.samples_metric, run.launched_wall,
                                    plan.target)
        record.update(status="ok", error=None, wall_time_s=run.ended_wall - run.launched_wall,
                      launched_at=run.launched_wall, **summary)
        record["metric"] = results.metric_of(record)
    except measure.MeasurementError as err:
        record.update(status="failed", error=str(err), wall_time_s=time.time() - started)
    except TrialError as err:  # diagnosed: the workers could not be placed, or a collective stalled
        record.update(
            status="failed",
            error=str(err),
            diagnosis=err.details,
            error_detail="".join(traceback.format_exception(err))[-4000:],
            wall_time_s=time.time() - started,
        )
    except Exception as err:  # a trial's failure is data for the report, never the end of the sweep
        record.update(
            status="failed",
            error=one_line(err),
            error_detail="".join(traceback.format_exception(err))[-4000:],
            wall_time_s=time.time() - started,
        )
    record.update(saved)
    record["started_at"] = started
    return record


def one_line(err: BaseException) -> str:
    """The most specific line of a (possibly remote, nested) error: usually the root cause."""
    text = str(err).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":", 1)[0] or "Exception" in line.split(":", 1)[0]:
            return line[:500]
    return (lines[-1] if lines else type(err).__name__)[:500]
