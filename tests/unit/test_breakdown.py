"""The step breakdown's arithmetic (orchestrator/measuring/breakdown.py) on cases computed by hand, and its place in the
spec, the plan and the report."""

import json

import pytest

from orchestrator import report
from orchestrator.job import plan, spec
from orchestrator.measuring import breakdown, results
from orchestrator.cli import main
from orchestrator.workloads import breakdown as worker_side
from tests.conftest import ROOT
from tests.unit.test_report import record


def test_bus_bandwidth_and_ring_bound_by_hand():
    # 4 ranks, 1 MB in 1 ms: algbw = 1e6 / 1e-3 = 1 GB/s; busbw = 1 GB/s * 2 * 3 / 4 = 1.5 GB/s.
    (point,) = breakdown.collective([{"bytes": 1_000_000, "seconds": 1e-3}], 4)["points"]
    assert point["algbw_gb_per_s"] == pytest.approx(1.0) and point["busbw_gb_per_s"] == pytest.approx(1.5)
    # A 3 MB gradient on 1.5 GB/s links: 2 * 3 / 4 * 3e6 / 1.5e9 = 3 ms.
    assert breakdown.ring_bound_s(3_000_000, 4, 1.5e9) == pytest.approx(3e-3)
    assert breakdown.ring_bound_s(3_000_000, 1, 1.5e9) == 0.0 and breakdown.bus_factor(2) == 1.0


def test_the_collective_is_fitted_once_and_stored_for_every_reader():
    # 2 ranks (bus factor 1): t = 50 us + S * 2 ns: bus bandwidth 0.5 GB/s, latency 50 us
    sizes = [4096, 65536, 1 << 20, 1 << 22]
    out = breakdown.collective([{"bytes": s, "seconds": 50e-6 + s * 2e-9} for s in sizes], 2)
    assert out["alpha_us"] == pytest.approx(50.0, rel=1e-3) and out["bus_gb_per_s"] == pytest.approx(0.5)
    assert out["beta_ns_per_kib"] == pytest.approx(2.0 * 1024)


def test_parts_that_add_up_to_more_than_the_step_are_flagged_not_quoted():
    fast = _worker(0, 0.5e-3, 4e-3, 9e-3)
    slow = _worker(1, 0.5e-3, 6e-3, 9e-3)
    out = breakdown.trial([fast, slow], 6.0e-3)  # the timed step (6 ms) is far below the blocks' 9 ms
    assert out["parts_exceed_step"] and "overlap_fraction" not in out
    row = {**out, "name": "torch/ddp", "workers": 2}
    from orchestrator.report.prose import breakdown_sentence

    assert "no part is quoted as a share of the step" in breakdown_sentence("torch ddp", [row])


def _worker(rank, local_fetch, local_step, sync_step, collective=None):
    return {"rank": rank, "breakdown": {
        "blocks": {"sync": {"fetch_s": local_fetch, "step_s": sync_step - local_fetch, "steps": 8},
                   "local": {"fetch_s": local_fetch, "step_s": local_step, "steps": 8}},
        "workers": 2, "gradient_bytes": 1_000_000, "backend": "gloo", "collective": collective}}


def test_parts_sum_to_the_sync_step_and_a_straggler_makes_the_others_wait():
    # the points of gloo's ring (the backend the workers report): alpha 0.1 ms, W = S / 1e9 B/s over 2 ranks
    bench = [{"bytes": b, "seconds": max(1e-4 + b * 1e-9 / 2, b * 1e-9)} for b in (4096, 1 << 18, 1 << 20, 1 << 22)]
    # rank 1 computes 2 ms more (a straggler); both all-reduce in lockstep: sync step 9 ms on both
    fast = _worker(0, 0.5e-3, 4e-3, 9e-3, bench)
    slow = _worker(1, 0.5e-3, 6e-3, 9e-3, bench)
    out = breakdown.trial([fast, slow], 9.2e-3)
    ranks = {r["rank"]: r for r in out["ranks"]}
    assert ranks[0]["wait_ms"] == pytest.approx(2.0) and ranks[1]["wait_ms"] == pytest.approx(0.0)
    assert ranks[0]["exposed_comm_ms"] == pytest.approx(2.5) == ranks[1]["exposed_comm_ms"]  # 9 - (0.5 + 6)
    for r in ranks.values():
        assert r["input_ms"] + r["compute_ms"] + r["wait_ms"] + r["exposed_comm_ms"] == pytest.approx(9.0)
    assert out["measured_sum_ms"] == pytest.approx(9.0) and out["other_ms"] == pytest.approx(0.2)
    # all-reduce alone of the 1 MB gradient over gloo's pipelined ring, fitted by its rule: alpha 0.1 ms,
    # W = 1e6 * 1 ns = 1 ms, max(0.1 + 0.5, 1.0) = 1.0 ms (one segment at a time it would be 1.1); exposed
    # 2.5 ms > it: no overlap
    assert out["collective"]["rule"] == "pipelined"
    assert out["collective"]["bus_gb_per_s"] == pytest.approx(1.0, rel=0.01)
    assert out["collective"]["alpha_us"] == pytest.approx(100.0, rel=0.02)
    assert out["allreduce_ms"] == pytest.approx(1.0, rel=0.01) and out["overlap_fraction"] == 0.0
    assert out["collective"]["busbw_peak_gb_per_s"] == pytest.approx(max(
        b["bytes"] / b["seconds"] / 1e9 for b in bench))
    assert breakdown.largest_part(out) == "compute_ms"


def test_message_sizes_bracket_the_gradient_and_the_bucket():
    sizes = worker_side.message_sizes(300_000, 300_000)
    assert sizes[0] == 4096 and sizes[-1] >= 4 * 300_000 // 4 * 4 - 4 and 300_000 in sizes
    assert all(s % 4 == 0 for s in sizes) and sizes == sorted(set(sizes))
    assert max(worker_side.message_sizes(10**9)) <= worker_side.MAX_MESSAGE


def test_blocks_alternate_and_leave_the_first_of_each_kind_out():
    seen = []

    def step(kind):
        seen.append(kind)
        return (0.001, 0.010) if len(seen) > 2 else (1.0, 1.0)  # the warm-up blocks are slow

    out = worker_side.blocks(step, 3, 2)
    assert seen == ["sync"] * 2 + ["local"] * 2 + ["sync"] * 2 + ["local"] * 2 + ["sync"] * 2 + ["local"] * 2
    assert out["sync"] == {"fetch_s": 0.001, "step_s": 0.010, "steps": 4, "step_sd_s": 0.0}


def test_breakdown_is_on_by_default_and_can_be_turned_off():
    job = spec.load(ROOT / "jobs/smoke.yaml")
    assert all(p.train_config["breakdown"] == {"blocks": 3, "steps": 5, "repeats": 5} for p in plan.build(job))
    data = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["measure"] = {"breakdown": False}
    assert all(p.train_config["breakdown"] is None for p in plan.build(spec.parse(data)))


def test_a_bad_breakdown_setting_exits_2_naming_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "jobs/smoke.yaml").read_text() + "measure: {breakdown_blocks: 1}\n")
    assert main(["sweep", str(bad), "--dry-run"]) == 2
    assert "measure.breakdown_blocks" in capsys.readouterr().err
    bad.write_text((ROOT / "jobs/smoke.yaml").read_text() + "measure: {breakdwn: true}\n")
    assert main(["sweep", str(bad), "--dry-run"]) == 2
    assert "did you mean 'breakdown'" in capsys.readouterr().err


def test_the_report_names_the_largest_cost_and_carries_the_numbers(tmp_path):
    # gloo's ring (the workers' backend): alpha 0.1 ms, B 1e9 B/s over 2 ranks
    bench = [{"bytes": b, "seconds": max(1e-4 + b * 1e-9 / 2, b * 1e-9)} for b in (4096, 1 << 18, 1 << 20)]
    for n, sync in ((1, 5e-3), (2, 9e-3)):
        workers = [_worker(r, 0.5e-3, 4e-3, sync, bench if n > 1 else None) for r in range(n)]
        for w in workers:
            w["breakdown"]["workers"] = n
        line = {**record("torch", "ddp", n, 0, 1000.0 * n), "execution": "eager",
                "breakdown": breakdown.trial(workers, sync)}
        results.append(tmp_path, line)
    report.render(tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    (sentence,) = data["breakdown"]["sentences"]
    # 2 workers: exposed = 9 - (0.5 + 4) = 4.5 ms of 9; ring bound 1e6 B at the fitted 1e9 B/s = 1 ms; no ratio
    # over one worker's "all-reduce" (it has none)
    assert sentence.startswith("torch ddp: at 2 worker(s) exposed communication is 50% of the step (4.50 ms, 4.5x "
                               "the ring bound of 1.000 ms), up from 0.500 ms at 1 worker(s)")
    top = data["breakdown"]["rows"][-1]
    assert top["exposed_comm_ms"] == pytest.approx(4.5) and top["ring_bound_ms"] > 0
    md = (tmp_path / "report.md").read_text()
    assert "## Why it scales as it does" in md and "| torch ddp | 2 | 0.500 ms | 4.000 ms | 4.500 ms |" in md
    csv = (tmp_path / "report.csv").read_text()
    assert "exposed_comm_ms" in csv.splitlines()[0] and ",4.5," in csv
    page = (tmp_path / "report.html").read_text()
    assert "Where a step" in page and "All-reduce bus bandwidth" in page


def test_user_function_curves_say_what_is_not_known(tmp_path):
    for n in (1, 2):
        line = {**record("tensorflow", "multi_worker_mirrored", n, 0, 10.0 * n, workload="a.b:c"),
                "execution": None, "samples_metric": "n"}
        results.append(tmp_path, line)
    data = report.build(results.read(tmp_path))
    (note,) = data["breakdown"]["notes"]
    assert "not broken down" in note and "strategy belongs to the function" in note


def test_a_slow_collective_takes_fewer_iterations_agreed_by_every_rank():
    """Each rank's own time would let ranks disagree on the count and hang in a collective: the count comes
    from the agreed time alone, so ranks that measured different times make the same calls."""
    def rank(own_s):
        calls = []

        def allreduce(nbytes):
            calls.append(nbytes)
            return own_s

        points = worker_side.microbenchmark(allreduce, [4096, 8192], repeats=5, iterations=10,
                                            agree=lambda seconds: 0.008)  # the slowest rank's, on every rank
        return calls, points

    (fast_calls, fast), (slow_calls, slow) = rank(0.001), rank(0.008)
    assert fast_calls == slow_calls
    count = worker_side.iterations_for(0.008, 10)
    assert count == 4 and [p["iterations"] for p in slow] == [count, count]
    assert len(slow_calls) == 2 * (2 + count + 5 * count)  # probe pair, warm-up, timed batches
    assert slow[0]["seconds"] == pytest.approx(0.008)


def test_iteration_counts_stay_between_their_bounds():
    assert worker_side.iterations_for(1e-5, 10) == 10  # a fast link keeps nccl-tests' count
    assert worker_side.iterations_for(0.5, 10) == worker_side.MIN_ITERATIONS  # a 64 MiB message on a slow link
    assert worker_side.iterations_for(0.0, 10) == 10
    assert worker_side.iterations_for(0.00312500001, 10) == worker_side.iterations_for(0.0031250000, 10)
    # without an agreement the count is the fixed one, as before
    calls = []
    worker_side.microbenchmark(lambda n: calls.append(n) or 0.01, [4096], repeats=2, iterations=3)
    assert len(calls) == 3 + 2 * 3


def test_growth_is_a_ratio_only_over_a_part_that_is_there():
    from orchestrator.report.prose import breakdown_sentence

    def row(workers, exposed, step):
        return {"workers": workers, "input_ms": 0.7, "compute_ms": 2.8, "exposed_comm_ms": exposed, "wait_ms": 0.1,
                "other_ms": 0.0, "step_ms": step, "ring_bound_ms": None, "overlap_fraction": None}

    # The 1-worker "all-reduce" measured 0.002 ms of a 3.5 ms step: noise, not a part to divide by.
    text = breakdown_sentence("tf", [row(1, 0.0017, 3.5), row(2, 7.65, 11.3)])
    assert "up from 0.002 ms at 1 worker(s)" in text and "x its" not in text
    # nor over one worker's, whatever it measured; over 2 workers' it is a ratio
    assert "x its" not in breakdown_sentence("tf", [row(1, 1.7, 5.0), row(2, 7.65, 11.3)])
    assert "2.0x its 3.80 ms at 2 worker(s)" in breakdown_sentence("tf", [row(2, 3.8, 7.4), row(4, 7.65, 11.3)])


def test_a_gloo_microbenchmark_is_fitted_by_gloos_own_rule():
    from orchestrator.measuring import collective as coll

    # 16 ranks, alpha 65 ms, bus bandwidth 380 Mbit/s: latency-bound up to 1 MiB, where a straight line's slope
    # is half the rule's (its B about twice the link's)
    n, alpha, bus = 16, 65e-3, 380e6 / 8
    sizes = [4096, 36176, 107520, 319556, 949720, 2097152, 2822556, 8388608]
    points = [(s, sum(coll.ring_parts(alpha, coll.bus_factor(n) * s / bus, True, coll.segments_per_rank(s, n))))
              for s in sizes]
    found = coll.fit(points, n, pipelined_=True)
    assert found.pipelined and found.alpha_s == pytest.approx(alpha, rel=0.01)
    assert found.bus_bytes_per_s == pytest.approx(bus, rel=0.01) and found.spread == coll.SPREAD_FLOOR
    assert coll.fit(points, n).bus_bytes_per_s > 1.1 * bus  # alpha + W read off the same points
    # a gloo record fitted as alpha + W (before the rule) is refitted from its points; NCCL's keeps its own
    stored = {**coll.fit(points, n).to_dict(), "rule": None,
              "points": [{"bytes": s, "time_ms": 1e3 * t} for s, t in points]}
    assert coll.from_record(stored, n, backend="gloo").bus_bytes_per_s == pytest.approx(bus, rel=0.01)
    assert coll.from_record(stored, n, backend="nccl").bus_bytes_per_s == pytest.approx(
        coll.fit(points, n).bus_bytes_per_s)
