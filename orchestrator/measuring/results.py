"""results.jsonl and the trial record: the one module that knows the record's schema.

results.jsonl holds one JSON line per finished trial (successful or not), in the order they finished. It is
append-only: a rerun of the same trial id (after an edit of the job, or a retry of a failed trial) appends
a new line and never rewrites an old one, so nothing measured is lost. Everything that analyses results
reads them through ``load``, which returns the *latest* record of each trial id as a typed
``TrialRecord``, and says how many older ones it left out.

A record is appended under a lock (``.results.jsonl.lock`` beside it, orchestrator.measuring.locks) in one write and
fsynced before the append returns, so two processes appending to one file never interleave or lose a line,
and a sweep costs O(bytes it adds), not a rewrite of the file per trial. A process killed in the middle of
a write can leave a torn last line: reading reports it (``Scan.torn``) and skips it, never fails on it; the
next append starts on a new line, so the torn one is never glued to a record.

Schema versions (``schema`` in each line; a line without it is version 1):

    1  the plan's fields, the measurements (orchestrator.measuring.measure), status, error, environment
    2  adds ``arm`` (the arm key), ``scaling`` (weak | strong) and ``metric`` (what throughput counts)
    3  adds ``launcher_reason`` (why its launcher) and ``worker_reuse`` (launcher: actors: the worker processes
       it ran in, see ``worker_reuse``); both absent from older lines (fresh processes, Ray Train by default)
    4  adds ``sweep_run`` (the sweep invocation that ran the trial, and the sweep's own time before it, see
       ``sweep_run``), for where a sweep's time went (``time_parts``); absent from older lines
    5  bandwidths named in their unit: ``algbw_gb_per_s``, ``busbw_gb_per_s``, ``busbw_peak_gb_per_s``
       (gigabytes per second; up to 4 they were ``*_gbps``, which reads as gigabits: ``parse`` renames them);
       adds ``curve_hash`` (the plan's content but the worker count and repeat: which points make one curve,
       see ``current``); a line without it is never called stale

Version-1 lines still read: the missing fields are derived from the ones they hold.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional

FILENAME = "results.jsonl"
SCHEMA_VERSION = 5

# Version 5's names of the bandwidths that versions up to 4 wrote as *_gbps (gigabytes per second all along).
RENAMED_5 = {"algbw_gbps": "algbw_gb_per_s", "busbw_gbps": "busbw_gb_per_s", "busbw_peak_gbps": "busbw_peak_gb_per_s"}

# What a trial's throughput counts, by the metric it is measured in. A user function that reports no sample
# count is timed between its reports: its "step" is one report interval.
UNITS = {"samples_per_sec": "samples/s", "steps_per_sec": "steps/s", "reports_per_sec": "reports/s"}


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the analysis sees it. ``data`` is the whole line as written (read-only)."""

    trial_id: str
    status: str
    job: Optional[str]
    arm: str
    """The arm key (``torch/ddp``, ``torch/ddp/compiled``): which curve the trial belongs to."""
    framework: str
    strategy: str
    execution: Optional[str]
    workload: str
    workers: int
    repeat: int
    scaling: Optional[str]
    """``weak`` (fixed per-worker batch) or ``strong`` (fixed global work); None where unknown."""
    metric: str
    """``samples_per_sec``, ``steps_per_sec`` (built-in steps) or ``reports_per_sec`` (a user function's
    report intervals): what ``throughput`` measures."""
    throughput: Optional[float]
    step_time_mean_s: Optional[float]
    test_accuracy: Optional[float]
    error: Optional[str]
    data: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def unit(self) -> str:
        return UNITS[self.metric]

    @property
    def builtin(self) -> bool:
        return self.execution is not None

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the line beyond the typed ones (settings, deployment, TensorBoard, failures...)."""
        return self.data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def worker_reuse(reuse: Mapping) -> dict:
    """The record's ``worker_reuse`` from a launcher's account of the processes a trial ran in: ``group`` (one
    id per set of worker processes), ``use`` (1: they were started for this trial; k: the k-th trial in them),
    ``shared_with`` (the trial ids that ran in them before this one) and ``pids`` (by rank)."""
    return {"group": str(reuse["group"]), "use": int(reuse["use"]), "shared_with": [str(t) for t in reuse["shared_with"]],
            "pids": [int(p) for p in reuse.get("pids", [])]}


def records_worker_reuse(line: Mapping) -> bool:
    """Whether the line says which worker processes its trial ran in (schema 3 on: ``worker_reuse`` where it
    shared them). Older lines predate worker reuse: every trial started fresh processes, by design, not
    because sweep.reuse_workers was false."""
    return int(line.get("schema", 1)) >= 3


def sweep_run(run_id: str, started_at: float, before_s: float) -> dict:
    """The record's ``sweep_run``: which invocation of ``orchestrator sweep`` ran the trial (``id``), when that
    started (``started_at``, before Ray), and ``before_s``: the sweep's own time between the end of the trial
    before this one in the same invocation (or the invocation's start) and this trial's launch: Ray's start
    and the planning before the first trial, closing a worker group and writing the last record between
    trials."""
    return {"id": str(run_id), "started_at": float(started_at), "before_s": max(0.0, float(before_s))}


def time_parts(line: Mapping) -> Optional[dict]:
    """Where a finished built-in trial's wall time (its launch to its end) went, in seconds, or None where the
    record cannot tell (a user's function has no steps; failed trials, and trials restarted after a failure;
    lines written before these fields):

        to_first_step_s   launch to the start of step 1: worker processes placed and started, imports,
                          rendezvous, data and model (a reused worker group: little but the data and model)
        training_s        the training steps on rank 0, the first (tracing, first collectives) included
        after_training_s  the last step to the trial's end: evaluation, the step breakdown and collective
                          microbenchmark (breakdown_s), the deployment exports (export_s), TensorBoard files,
                          the files sent back
    """
    needed = ("wall_time_s", "time_to_first_step_s", "first_step_s", "training_s")
    if line.get("status") != "ok" or line.get("failures") or any(
            not isinstance(line.get(k), (int, float)) for k in needed):
        return None
    wall, training = line["wall_time_s"], line["training_s"]
    # Step 1's end is the slowest rank's, mapped onto the driver's clock (measure.py), and training is rank 0's
    # steps: where the two overlap by a few ms, the gap comes off the time to step 1, so the parts add up.
    before = max(0.0, min(line["time_to_first_step_s"] - line["first_step_s"], wall - training))
    after = max(0.0, wall - before - training)
    breakdown = (line.get("breakdown") or {}).get("seconds")
    export = (line.get("deployment") or {}).get("seconds")
    return {"to_first_step_s": before, "training_s": training, "after_training_s": after,
            # the parts of after_training_s the workers timed (None: not run, or a record from before)
            "breakdown_s": breakdown if isinstance(breakdown, (int, float)) else None,
            "export_s": export if isinstance(export, (int, float)) else None}


def metric_of(line: Mapping) -> str:
    """Which throughput a record is measured in: samples where the trial counted them, else its steps
    (built-in workloads) or report intervals (a user's function)."""
    if line.get("samples_per_sec") is not None:
        return "samples_per_sec"
    builtin = line.get("execution") is not None or line.get("samples_metric") == "samples"
    return "steps_per_sec" if builtin else "reports_per_sec"


def _scaling_of(line: Mapping) -> Optional[str]:
    if line.get("scaling") in ("weak", "strong"):
        return line["scaling"]
    return None


def _renamed(value: Any) -> Any:
    if isinstance(value, dict):
        return {RENAMED_5.get(k, k): _renamed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return value


def upgrade(line: Mapping) -> dict:
    """A line of any schema version with the current version's names (the values are not touched)."""
    line = dict(line)
    if "breakdown" in line:  # the *_gbps names exist in no version 5 record: renamed wherever they appear
        line["breakdown"] = _renamed(line["breakdown"])
    return line


def parse(line: Mapping) -> TrialRecord:
    """A record from one results.jsonl line, of any schema version."""
    from orchestrator.job.spec import execution_key

    line = upgrade(line)
    metric = line.get("metric") or metric_of(line)
    rate_key = "steps_per_sec" if metric == "reports_per_sec" else metric
    return TrialRecord(
        trial_id=str(line["trial_id"]),
        status=str(line.get("status", "failed")),
        job=line.get("job"),
        arm=line.get("arm") or execution_key(line["framework"], line["strategy"], line.get("execution")),
        framework=line["framework"],
        strategy=line["strategy"],
        execution=line.get("execution"),
        workload=str(line.get("workload", "")),
        workers=int(line["workers"]),
        repeat=int(line.get("repeat", 0)),
        scaling=_scaling_of(line),
        metric=metric,
        throughput=line.get(rate_key),
        step_time_mean_s=line.get("step_time_mean_s"),
        test_accuracy=line.get("test_accuracy"),
        error=line.get("error"),
        data=MappingProxyType(dict(line)),
    )


def typed(records: Iterable) -> list[TrialRecord]:
    """Records as TrialRecords (lines given as dicts are parsed)."""
    return [r if isinstance(r, TrialRecord) else parse(r) for r in records]


@dataclass(frozen=True)
class Results:
    """What a results.jsonl holds for analysis: the latest record of each trial id, in the order those
    records were written, and how many older records of those ids were left out."""

    records: list[TrialRecord]
    """The latest record of each trial id whose curve is the plan its arm last ran (``current``)."""
    superseded: int
    stale: list[TrialRecord] = field(default_factory=list)
    """Latest records of trials measured under an earlier plan of their curve (the job was edited since): they
    enter no curve, efficiency, fit or verdict; the next sweep runs them again."""
    torn: list[int] = field(default_factory=list)
    """Line numbers of results.jsonl that are not JSON (a write cut off by a killed process): skipped."""

    @property
    def ok(self) -> list[TrialRecord]:
        return [r for r in self.records if r.ok]

    @property
    def failed(self) -> list[TrialRecord]:
        return [r for r in self.records if not r.ok]


def curve_of(record: TrialRecord) -> tuple:
    """The curve a record is a point of: its arm and workload (scaling.curves draws one curve per key)."""
    return (record.arm, record.workload)


def current(records: list[TrialRecord]) -> tuple[list[TrialRecord], list[TrialRecord]]:
    """``records`` (latest per trial id, in the order written) split into (current, stale): a curve's points
    come from one plan content, the ``curve_hash`` of the record its curve wrote last; a point measured
    under another (the job was edited and rerun, and the rerun has not reached it yet) is stale. A line
    without a curve_hash (written before schema 5) cannot tell and is never called stale: it counts with its
    curve's plan, as it did before, so an upgrade does not set a sweep's earlier points apart."""
    last: dict[tuple, Optional[str]] = {}
    for record in records:
        if record.get("curve_hash"):
            last[curve_of(record)] = record.get("curve_hash")

    def stale(record: TrialRecord) -> bool:
        mine, theirs = record.get("curve_hash"), last.get(curve_of(record))
        return bool(mine and theirs and mine != theirs)

    return [r for r in records if not stale(r)], [r for r in records if stale(r)]


def latest(lines: Iterable, torn: Iterable[int] = ()) -> Results:
    """Latest-wins per trial id: a rerun's record replaces the earlier one of the same id; then the points
    of an earlier plan of their curve are set apart (``current``)."""
    by_id = _by_id(lines)
    fresh, stale = current(list(by_id[0].values()))
    return Results(records=fresh, superseded=by_id[1], stale=stale, torn=list(torn))


def _by_id(lines: Iterable) -> tuple[dict[str, TrialRecord], int]:
    by_id: dict[str, TrialRecord] = {}
    total = 0
    for record in typed(lines):
        total += 1
        by_id.pop(record.trial_id, None)  # an id takes the place of its latest record
        by_id[record.trial_id] = record
    return by_id, total - len(by_id)


def load(out_dir: str | Path) -> Results:
    found = scan(out_dir)
    return latest(found.lines, found.torn)


@dataclass(frozen=True)
class Scan:
    """results.jsonl as read: every record line as written (superseded ones included: nothing is lost), and
    the numbers of the lines that are not JSON, skipped (a write cut off: the sweep was killed)."""

    lines: list[dict]
    torn: list[int]

    def torn_note(self, path: str | Path) -> Optional[str]:
        if not self.torn:
            return None
        where = ", ".join(str(n) for n in self.torn)
        return (f"{path}: line(s) {where} are not JSON (a write cut off, e.g. a killed sweep) and were skipped; "
                "a trial no other line records runs again on the next sweep")


def scan(out_dir: str | Path) -> Scan:
    path = Path(out_dir) / FILENAME
    if not path.exists():
        return Scan([], [])
    records, torn = [], []
    for number, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                torn.append(number)
                continue
            if not isinstance(record, dict) or not {"trial_id", "framework", "strategy", "workers"} <= set(record):
                raise ValueError(f"{path}:{number}: not a trial record (it needs trial_id, framework, strategy and "
                                 "workers); was the file edited by hand?")
            records.append(record)
    return Scan(records, torn)


def read(out_dir: str | Path) -> list[dict]:
    """Every record line of results.jsonl as written, superseded ones included; torn lines skipped (``scan``
    says which)."""
    return scan(out_dir).lines


def append(out_dir: str | Path, record: dict) -> None:
    """Add one record as one line: under the file's lock, in one write, fsynced before returning."""
    from orchestrator.measuring import locks

    path = Path(out_dir) / FILENAME
    line = (json.dumps({"schema": SCHEMA_VERSION, **record}, sort_keys=True) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with locks.file_lock(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies, as for any file
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(path, "rb") as handle:  # a torn last line (a killed writer) gets its own line
                    handle.seek(size - 1)
                    if handle.read(1) != b"\n":
                        line = b"\n" + line
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)


def completed(records: Iterable) -> dict[str, TrialRecord]:
    """Successful trials by trial id, for resuming a sweep (the latest record of an id wins; the sweep compares
    its plan_hash, so a stale point runs again and an edit undone finds its points done)."""
    return {r.trial_id: r for r in _by_id(records)[0].values() if r.ok}


def write_atomic(path: str | Path, content: bytes | str) -> None:
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    # Created 0666 less the umask, as any file the user writes (mkstemp's 0600 would keep reports private);
    # nothing process-wide is changed, so threads writing at the same time are safe.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
