"""Warm-up exclusion and per-worker throughput, from recorded reports."""

import pytest

from orchestrator.measuring import measure


def builtin_records(step_times, per_step_samples=10, every=2):
    records, t = [], 0.0
    for i in range(0, len(step_times), every):
        chunk = step_times[i : i + every]
        t += sum(chunk)
        records.append({"t": t, "metrics": {"samples": per_step_samples * len(chunk), "step_times_s": chunk}})
    return records


def test_builtin_warmup_steps_are_left_out():
    # Two slow warm-up steps, then four steps of 0.1 s with 10 samples each: 40 samples / 0.4 s.
    summary = measure.summarize_worker(builtin_records([5.0, 3.0, 0.1, 0.1, 0.1, 0.1]), 2, "samples")
    assert summary["measured_steps"] == 4
    assert summary["samples_per_sec"] == pytest.approx(100.0)
    assert summary["steps_per_sec"] == pytest.approx(10.0)


def test_user_function_is_timed_between_reports():
    # Reports at 10 s (after set-up), 12, 14, 17: intervals 2, 2, 3; warm-up 1 report drops the first.
    records = [{"t": t, "metrics": {"n": 100}} for t in (10.0, 12.0, 14.0, 17.0)]
    summary = measure.summarize_worker(records, 1, "n")
    assert summary["measured_steps"] == 2
    assert summary["samples_per_sec"] == pytest.approx(200 / 5)
    no_samples = measure.summarize_worker(records, 0, None)
    assert no_samples["samples_per_sec"] is None and no_samples["steps_per_sec"] == pytest.approx(3 / 7)


def test_nothing_left_to_measure_is_an_error():
    with pytest.raises(measure.MeasurementError, match="nothing left to measure"):
        measure.summarize_worker([{"t": 1.0, "metrics": {}}], 0, None)


def test_trial_sums_workers_and_takes_the_slowest_step():
    workers = [
        {"rank": r, "node_id": "n", "hostname": "h", "started_wall": 100.0 + r,
         "records": builtin_records([0.1, 0.1, 0.1, 0.2 if r else 0.1])}
        for r in (0, 1)
    ]
    summary = measure.summarize(workers, 0, "samples", launched_wall=90.0)
    assert summary["samples_per_sec"] == pytest.approx(40 / 0.4 + 40 / 0.5)
    assert summary["steps_per_sec"] == pytest.approx(4 / 0.5)
    assert summary["startup_s"] == pytest.approx(11.0)
    assert [w["rank"] for w in summary["per_worker"]] == [0, 1]


def test_restarted_trial_is_measured_on_its_last_attempt_in_rank_order():
    def worker(rank, started, steps_from, step_time):
        times = [step_time] * 4
        return {"rank": rank, "node_id": "n", "hostname": "h", "started_wall": started,
                "records": [{"t": 1.0, "wall": started + 1.0,
                             "metrics": {"samples": 40, "step_times_s": times, "step": steps_from + 4}}]}

    first = [worker(1, 100.0, 0, 0.5), worker(0, 100.1, 0, 0.5)]  # the slow, disturbed attempt
    second = [worker(1, 200.2, 50, 0.1), worker(0, 200.0, 50, 0.1)]
    summary = measure.summarize(first + second, 0, "samples", launched_wall=99.0)
    assert [w["rank"] for w in summary["per_worker"]] == [0, 1]
    assert summary["samples_per_sec"] == pytest.approx(2 * 40 / 0.4)
    assert summary["failures"] == 1
    (event,) = summary["failure_events"]
    assert event["resumed_after_step"] == 50 and event["last_reported_step"] == 4
    assert event["recovery_s"] == pytest.approx(200.0 + 1.0 - (100.1 + 1.0))


def _worker(rank: int, error: str | None = None, finished: bool = False) -> dict:
    return {"rank": rank, "pid": 100 + rank, "hostname": "h", "node_ip": "10.0.0.1", "node_id": "n", "started_wall": 1.0,
            "records": [{"wall": 2.0, "metrics": {"step": 40}}], "finished_wall": 3.0 if finished else None,
            **({"error": {"wall": 5.0, "message": error}} if error else {})}


HOROVOD_SHUT_DOWN = ("horovod.common.exceptions.HorovodInternalError: Horovod has been shut down. This was caused by "
                     "an exception on one of the ranks or an attempt to allreduce, allgather or broadcast a tensor after "
                     "one of the ranks finished execution.")


def test_horovod_shutting_down_a_stalled_collective_names_the_rank_that_never_joined():
    stall = measure.stall([_worker(0, HOROVOD_SHUT_DOWN), _worker(1)])
    assert [s["rank"] for s in stall["stalled"]] == [1] and stall["waited"] == [0]
    assert stall["error"].startswith("Horovod has been shut down (its stall inspector")


def test_horovod_shut_down_after_another_rank_raised_is_not_a_stall():
    # rank 1 raised, so Horovod shut rank 0 down: rank 1's own error is the failure, no rank never joined
    assert measure.stall([_worker(0, HOROVOD_SHUT_DOWN), _worker(1, "ValueError: bad batch")]) is None
    assert measure.stall([_worker(0, HOROVOD_SHUT_DOWN), _worker(1, finished=True)]) is None
