"""Pure: turn what the workers recorded during one trial into that trial's measurements.

Two kinds of timing, one rule for warm-up:

* Built-in workloads time every step themselves and send the times in their reports (``step_times_s``).
  Throughput comes from those steps; the first ``warmup_steps`` steps are left out.
* A user's function is timed between its reports: the stamps come from the worker's own clock when the
  function calls ``ray.train.report``. The stretch before the first report (imports, set-up) is always
  left out, and so are the next ``warmup_steps`` report intervals.

Every worker is measured separately; the trial's throughput is the sum of its workers' throughputs.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Optional

from orchestrator.measuring import breakdown


class MeasurementError(ValueError):
    """The trial ran but left nothing to measure."""


@dataclass(frozen=True)
class Interval:
    seconds: float
    steps: int
    samples: Optional[float]


def intervals(records: list[dict], warmup: int, samples_metric: Optional[str]) -> list[Interval]:
    """The measured intervals of one worker, warm-up excluded."""
    if any("step_times_s" in r["metrics"] for r in records):
        steps: list[Interval] = []
        for record in records:
            metrics = record["metrics"]
            times = metrics.get("step_times_s") or []
            per_step = metrics.get(samples_metric) / len(times) if samples_metric in metrics and times else None
            steps += [Interval(t, 1, per_step) for t in times]
        return steps[warmup:]
    spans = []
    for previous, record in zip(records, records[1:]):
        samples = record["metrics"].get(samples_metric) if samples_metric else None
        spans.append(Interval(record["t"] - previous["t"], 1, float(samples) if samples is not None else None))
    return spans[warmup:]


def summarize_worker(records: list[dict], warmup: int, samples_metric: Optional[str]) -> dict:
    measured = intervals(records, warmup, samples_metric)
    if not measured:
        raise MeasurementError(
            f"nothing left to measure: {len(records)} report(s), warm-up {warmup}. "
            "Lower training.warmup_steps, or report more often"
        )
    seconds = sum(i.seconds for i in measured)
    steps = sum(i.steps for i in measured)
    durations = [i.seconds / i.steps for i in measured]
    has_samples = all(i.samples is not None for i in measured)
    samples = sum(i.samples for i in measured) if has_samples else None
    return {
        **host_cpu(records, warmup),
        "measured_steps": steps,
        "measured_seconds": seconds,
        "steps_per_sec": steps / seconds,
        "samples_per_sec": samples / seconds if samples is not None else None,
        "step_time_mean_s": statistics.fmean(durations),
        "step_time_std_s": statistics.stdev(durations) if len(durations) > 1 else 0.0,
        "step_time_p50_s": statistics.median(durations),
    }


def host_cpu(records: list[dict], warmup: int) -> dict:
    """This rank's process CPU per timed step (every thread: the collective's, the framework's, Ray's), over
    the reports whose steps all come after the warm-up, and the cores it could run on; {} where the workload
    reported neither (a user's function)."""
    done, cpu, counted, cores = 0, 0.0, 0, None
    for record in records:
        metrics = record["metrics"]
        times = metrics.get("step_times_s") or []
        first = done + 1
        done += len(times)
        if "cpu_set" in metrics:
            cores = list(metrics["cpu_set"])
        if "cpu_s" in metrics and times and first > warmup:
            cpu += float(metrics["cpu_s"])
            counted += len(times)
    out = {}
    if counted:
        out["cpu_per_step_s"] = cpu / counted
    if cores:
        out["cpu_set"] = cores
    return out


def _on_driver_clock(worker: dict, worker_wall: float) -> float:
    """A worker's wall-clock stamp moved onto the driver's clock: the recorder (on the driver's node) stamped
    the worker's registration on arrival, the worker stamped it as it left (``sent_wall``), and the worker's own
    clock gives the time from there. Clocks of different nodes are never subtracted from each other."""
    registered, sent = worker.get("registered_wall"), worker.get("sent_wall")
    if registered is None or sent is None:  # records written before registrations were stamped both ends
        return worker_wall
    return registered + (worker_wall - sent)


def _first_step_done(workers: list[dict]) -> Optional[float]:
    walls = [_on_driver_clock(w, r["metrics"]["first_step_wall"]) for w in workers for r in w["records"]
             if "first_step_wall" in r["metrics"]]
    return max(walls) if len(walls) == len(workers) and walls else None


def first_step_s(records: list[dict]) -> Optional[float]:
    """How long a built-in workload's step 1 took, if this worker ran it (not after a restore)."""
    for record in records:
        metrics = record["metrics"]
        times = metrics.get("step_times_s") or []
        if times and "step" in metrics:
            return times[0] if metrics["step"] - len(times) + 1 == 1 else None
    return None


def attempts(workers: list[dict]) -> list[list[dict]]:
    """Split worker processes into attempts: a rank seen again starts the next one (Ray Train restarted
    the whole worker group after a failure)."""
    groups: list[list[dict]] = []
    for worker in sorted(workers, key=lambda w: w["started_wall"]):
        if not groups or any(w["rank"] == worker["rank"] for w in groups[-1]):
            groups.append([])
        groups[-1].append(worker)
    return groups


def _started_at(first_attempt: list[dict]) -> Optional[int]:
    steps = [r["metrics"]["step"] - len(r["metrics"].get("step_times_s") or []) + 1 for w in first_attempt
             for r in w["records"][:1] if "step" in r["metrics"]]
    return min(steps) if steps else None


def failures(groups: list[list[dict]]) -> dict:
    """What the restarts cost: how long from the last report before each failure to the first report
    after it, and how many steps were done twice (at most the checkpoint interval)."""
    events = []
    def arrived(record: dict) -> float:  # on the recorder's clock where it stamped the record
        return record.get("received_wall", record["wall"])

    for before, after in zip(groups, groups[1:]):
        last = max((r for w in before for r in w["records"]), key=arrived, default=None)
        first = min((r for w in after for r in w["records"]), key=arrived, default=None)
        event = {"recovery_s": arrived(first) - arrived(last) if last and first else None}
        reached = max((r["metrics"].get("step", 0) for w in before for r in w["records"]), default=0)
        resumed = [r["metrics"]["step"] - len(r["metrics"].get("step_times_s", [])) for w in after
                   for r in w["records"][:1] if "step" in r["metrics"]]
        if resumed:
            event["resumed_after_step"] = min(resumed)
            event["steps_redone_at_least"] = max(0, reached - min(resumed))
        event["last_reported_step"] = reached
        events.append(event)
    return {"failures": len(events), "failure_events": events}


# How a rank says it gave up waiting for another: gloo and Ray Train time out; TensorFlow's coordination
# service aborts the collective once a task stops sending heartbeats; Horovod's stall inspector shuts Horovod
# down (the same words follow another rank's exception, but then that rank failed: no stall is inferred).
_GAVE_UP_WORDS = ("timed out", "timeout", "deadline", "collective ops is aborted", "stopped sending heartbeats")
_HOROVOD_SHUT_DOWN = "horovod has been shut down"


def gave_up_line(message: str) -> Optional[str]:
    """The line of an error message that says the rank gave up waiting in a collective, if any."""
    for line in message.splitlines():
        if _HOROVOD_SHUT_DOWN in line.lower():
            return "Horovod has been shut down (its stall inspector, HOROVOD_STALL_SHUTDOWN_TIME_SECONDS)"
        if any(word in line.lower() for word in _GAVE_UP_WORDS):
            return line.strip()[:300]
    return None


def last_step(worker: dict):
    """A worker's last reported step (its records as the recorder holds them), None before its first. The
    recorder's stall watch asks every few seconds: read from the end."""
    return next((r["metrics"]["step"] for r in reversed(worker["records"]) if "step" in r["metrics"]), None)


def lost_nodes(workers: list[dict], alive_nodes: Optional[set]) -> list[dict]:
    """The last attempt's unfinished workers whose node is no longer alive (``alive_nodes``: node ids)."""
    if not workers or alive_nodes is None:
        return []
    last = attempts(workers)[-1]
    return [{"rank": w["rank"], "pid": w["pid"], "hostname": w.get("hostname"), "node_ip": w.get("node_ip"),
             "node_id": w.get("node_id"), "last_step": last_step(w)}
            for w in sorted(last, key=lambda w: w["rank"])
            if w.get("finished_wall") is None and w.get("node_id") and w["node_id"] not in alive_nodes]


def stall(workers: list[dict]) -> Optional[dict]:
    """Who stalled a collective, from the last attempt's workers: the ranks that gave up waiting (their
    error says timed out) and the ranks that neither failed nor finished, i.e. never joined. None when the
    records do not show that pattern (the failure was something else)."""
    if not workers:
        return None
    last = attempts(workers)[-1]
    waited = [w for w in last if w.get("error") and gave_up_line(w["error"]["message"])]
    stalled = [w for w in last if not w.get("error") and w.get("finished_wall") is None]
    if not waited or not stalled:
        return None

    return {
        "stalled": [{"rank": w["rank"], "pid": w["pid"], "hostname": w["hostname"], "node_ip": w.get("node_ip"),
                     "node_id": w.get("node_id"), "last_step": last_step(w),
                     "last_report_wall": w["records"][-1]["wall"] if w["records"] else None}
                    for w in sorted(stalled, key=lambda w: w["rank"])],
        "waited": sorted(w["rank"] for w in waited),
        "gave_up_wall": min(w["error"]["wall"] for w in waited),
        "error": gave_up_line(waited[0]["error"]["message"]),
    }


def rendezvous_view(worker: dict) -> dict:
    """What the rendezvous watch reads of a recorded worker (trial.Recorder.heard): who, where, and when it
    reached the rendezvous and joined (the recorder's clock)."""
    return {k: worker.get(k) for k in ("rank", "pid", "hostname", "node_ip", "node_id", "registered_wall",
                                       "rendezvous_wall", "joined_wall", "finished_wall")} | {
        "error": bool(worker.get("error")), "last_step": last_step(worker) if "records" in worker else None}


def rendezvous_stall(workers: list[dict], world: int, timeout_s: float, now_wall: float,
                     after_failure: bool = False, pids: Optional[list[int]] = None) -> Optional[dict]:
    """A first rendezvous that cannot complete: some rank has waited at it (marked ``rendezvous``, not yet
    ``joined``) for over ``timeout_s`` while another rank never reached it (not started, or stopped before
    it). ``workers``: rendezvous_view of each worker process of the trial; ``world``: its ranks; ``pids``: the
    launcher's pid of each rank (for a rank stopped before it registered). None while
    no rank has waited that long, once every rank reached it (a stall after it is measure.stall's), or when
    a rank has ended (its error is the trial's) -- unless ``after_failure``: the post-mortem of a trial whose
    waiting rank gave up or died there (Horovod's Gloo ends its own wait, and can take the process with it)."""
    if any(w.get("finished_wall") for w in workers) or (not after_failure and any(w.get("error") for w in workers)):
        return None
    by_rank = {w["rank"]: w for w in workers}
    waiting = [w for w in workers if w.get("rendezvous_wall") and not w.get("joined_wall")]
    if not waiting:
        return None
    since = min(w["rendezvous_wall"] for w in waiting)
    if now_wall - since <= timeout_s:
        return None
    missing = [r for r in range(world) if not (by_rank.get(r) or {}).get("rendezvous_wall")]
    if not missing:
        return None
    stalled = []
    for rank in missing:
        w = by_rank.get(rank) or {}
        pid = w.get("pid") or (pids[rank] if pids and rank < len(pids) else None)
        stalled.append({"rank": rank, "pid": pid, "hostname": w.get("hostname"), "node_ip": w.get("node_ip"),
                        "node_id": w.get("node_id"), "last_step": None, "started": rank in by_rank})
    return {"stalled": stalled, "waited": sorted(w["rank"] for w in waiting), "waited_s": now_wall - since,
            "gave_up_wall": now_wall, "phase": "rendezvous"}


def rendezvous_message(stall: dict, what: str, timeout_s: float) -> str:
    """The trial's error for a rendezvous_stall: the ranks that never reached ``what``, the ones that waited."""
    def who(s: dict) -> str:
        if not s["started"]:
            pid = f"pid {s['pid']}, " if s.get("pid") else ""
            return f"rank {s['rank']} ({pid}its training function never started)"
        where = f"{s['node_ip']} ({s['hostname']})" if s.get("node_ip") and s.get("hostname") else (s.get("node_ip") or "?")
        return f"rank {s['rank']} (pid {s['pid']} on node {where}, before its first step)"

    waited = ", ".join(str(r) for r in stall["waited"])
    return (f"collective stalled: {'; '.join(who(s) for s in stall['stalled'])} never joined {what} (it hung before "
            f"it, or its node was cut off from the others); rank(s) {waited} gave up after {timeout_s:g} s "
            f"(reliability.collective_timeout_s) waiting there {stall['waited_s']:.0f} s")


def _last_steps_median(workers: list[dict], per_worker: list[dict]) -> float:
    """The step the breakdown is held against: the median of the last report's timed steps (the ones just
    before the breakdown's blocks, so that a slow drift of the machine does not come between them), of the
    slowest rank; the whole run's median where the last report holds few steps."""
    medians = []
    for worker, summary in zip(workers, per_worker):
        last = next((r["metrics"].get("step_times_s") or [] for r in reversed(worker["records"])
                     if r["metrics"].get("step_times_s")), [])
        medians.append(statistics.median(last) if len(last) >= 10 else summary["step_time_p50_s"])
    return max(medians)


def time_to_target(groups: list[list[dict]], target: Optional[dict], samples_metric: Optional[str]) -> Optional[dict]:
    """Steps, samples and seconds to training.target, from rank 0's reports over every attempt.

    Built-in workloads time it themselves (orchestrator/workloads/target.py: the clock from the first data
    touch, evaluations on it) and report ``target_reached`` once. A user's function's reports are its
    evaluations: the first report whose metric meets the target, timed from the function's start (its first
    data touch is its own), its steps counted in reports and its samples in ``samples_metric``."""
    if not target:
        return None
    from orchestrator.workloads.target import met

    out = {"metric": target["metric"], "value": target["value"], "mode": target.get("mode"), "reached": False}
    rank0 = [w for group in groups for w in group if w["rank"] == 0]
    records = [(w, r) for w in rank0 for r in w["records"]]
    hit = next((r["metrics"]["target_reached"] for _, r in records if "target_reached" in r["metrics"]), None)
    if hit:
        return {**out, "reached": True, "steps": hit["step"], "samples": hit["samples"], "seconds": hit["seconds"],
                "eval_seconds": hit.get("eval_seconds"), "reached_value": hit["value"]}
    seen = [(w, r) for w, r in records if isinstance(r["metrics"].get(target["metric"]), (int, float))]
    out["reported"] = bool(seen)
    if not seen:
        return out
    first = rank0[0]
    samples = 0.0
    for index, (worker, record) in enumerate(records, 1):
        samples += float(record["metrics"].get(samples_metric) or 0) if samples_metric else 0.0
        value = record["metrics"].get(target["metric"])
        if isinstance(value, (int, float)) and met(float(value), target):
            return {**out, "reached": True, "steps": index, "samples": samples if samples_metric else None,
                    "seconds": _on_driver_clock(worker, record["wall"]) - _on_driver_clock(first, first["started_wall"]),
                    "reached_value": float(value), "steps_unit": "reports"}
    return out


def summarize(workers: list[dict], warmup: int, samples_metric: Optional[str], launched_wall: float,
              target: Optional[dict] = None) -> dict:
    """The trial's measurements from every worker's records (see harness.train_loop_per_worker).

    After a failure only the last attempt is measured (its own warm-up excluded): the disturbed interval
    never enters throughput. The restarts are reported separately."""
    if not workers:
        raise MeasurementError("no worker reported back")
    groups = attempts(workers)
    already = next((r["metrics"]["target_already_met"] for w in workers for r in w["records"]
                    if "target_already_met" in r["metrics"]), None)
    if already:
        raise MeasurementError(already)
    reached = time_to_target(groups, target, samples_metric)
    restarts = failures(groups)
    workers = sorted(groups[-1], key=lambda w: w["rank"])
    per_worker = []
    for worker in workers:
        summary = summarize_worker(worker["records"], warmup, samples_metric)
        per_worker.append({"rank": worker["rank"], "node_id": worker["node_id"], "hostname": worker["hostname"],
                           "node_ip": worker.get("node_ip"), **summary})
    rank0 = next(w for w in workers if w["rank"] == 0)
    final = rank0["records"][-1]["metrics"] if rank0["records"] else {}
    has_samples = all(w["samples_per_sec"] is not None for w in per_worker)
    first_report = min(
        (_on_driver_clock(w, w["started_wall"]) + w["records"][0]["t"] for w in workers if w["records"]), default=None
    )
    first_steps = [t for t in (first_step_s(w["records"]) for w in workers) if t is not None]
    first = max(first_steps) if len(first_steps) == len(workers) else None
    first_done = _first_step_done(groups[0])
    step_time = max(w["step_time_mean_s"] for w in per_worker)
    broken_down = breakdown.trial([{"rank": w["rank"], "collective": w.get("collective"),
                                    "collective_backend": w.get("collective_backend"),
                                    "breakdown": next((r["metrics"]["breakdown"] for r in reversed(w["records"])
                                                       if "breakdown" in r["metrics"]), None)}
                                   for w in workers], _last_steps_median(workers, per_worker))
    return {
        "samples_per_sec": sum(w["samples_per_sec"] for w in per_worker) if has_samples else None,
        # Data-parallel workers step in lockstep, so the trial's step rate is the slowest worker's.
        "steps_per_sec": min(w["steps_per_sec"] for w in per_worker),
        "step_time_mean_s": step_time,
        "step_time_std_s": max(w["step_time_std_s"] for w in per_worker),
        "measured_steps": min(w["measured_steps"] for w in per_worker),
        "measured_seconds": max(w["measured_seconds"] for w in per_worker),
        # From the first attempt: after a restart the last attempt's start includes the failure.
        "startup_s": max(_on_driver_clock(w, w["started_wall"]) for w in groups[0]) - launched_wall,
        "time_to_first_report_s": first_report - launched_wall if first_report else None,
        # Launch to the moment the slowest worker finished step 1 (built-in workloads; first attempt).
        "time_to_first_step_s": first_done - launched_wall if first_done else None,
        "test_accuracy": final.get("test_accuracy"),
        "final_loss": final.get("loss"),
        # The first step pays for tracing/compiling the step (tf.function, torch.compile, XLA) and for the
        # first collectives; what it takes beyond a steady step is reported as compile time.
        "first_step_s": first,
        # Rank 0's time inside training steps, warm-up included: the part of wall_time_s that is training.
        "training_s": sum(t for r in rank0["records"] for t in r["metrics"].get("step_times_s") or []) or None,
        "compile_s": max(0.0, first - max(w["step_time_p50_s"] for w in per_worker)) if first is not None else None,
        "nodes": sorted({w["node_id"] for w in per_worker}),
        "final_step": final.get("step"),
        # Above 1 where this run resumed from a checkpoint of an earlier one (orchestrator train, rerun).
        "started_at_step": _started_at(groups[0]),
        **restarts,
        "per_worker": per_worker,
        "breakdown": broken_down,
        **({"target": reached} if reached else {}),
    }
