"""The step breakdown and the collective microbenchmark on a real local Ray cluster, both frameworks, 1 and 2
workers (issue 19). Trials run on the actors launcher to keep them short; the workers are the same code."""

import copy
import statistics

import pytest

from orchestrator.job import spec
from orchestrator.measuring import results
from orchestrator.running import scheduler

JOB = {
    "name": "breakdown",
    "arms": [{"framework": "torch", "strategy": "ddp"}, {"framework": "tensorflow", "strategy": "multi_worker_mirrored"}],
    # Steps of a few ms: on 2 shared cores a 1 ms step's median moves by 30% between two moments.
    "workload": {"model": "mlp", "params": {"hidden": [512, 512]}},
    "dataset": {"name": "digits"},
    "batch": {"per_worker": 64},
    "training": {"steps": 120, "warmup_steps": 20, "report_every": 60},
    "sweep": {"workers": [1, 2]},
    "resources": {"cpus_per_worker": 1},
    "deploy": {"export": False},
    "measure": {"breakdown_blocks": 4, "breakdown_steps": 10},
    "launcher": "actors",
}


def sweep(job, out):
    scheduler.sweep(spec.parse(job), out)
    found = results.load(out).records
    assert all(r.ok for r in found), [r.error for r in found]
    return {(r.framework, r.workers): r for r in found}


@pytest.fixture(scope="module")
def measured(ray_session, tmp_path_factory):
    return sweep(JOB, tmp_path_factory.mktemp("on"))


def test_the_parts_sum_to_the_step(measured):
    """The parts are measured in the blocks, the step in the timed steps just before them. On 2 shared cores
    the same step's median moves between two moments (parts / step of 0.61 to 1.52 seen here, in runs of this
    test; a bigger model's steps move as much; in one CI run all four trials 11-17% off, the machine slowed to half
    its speed), so: within 20% for at least half the trials, and never off by
    a factor of 2: a part timed per block (10 steps) or per sample (64), or in the wrong unit, would be off by
    10x or more."""
    within = 0
    for key, record in measured.items():
        parts = record["breakdown"]
        total = sum(parts[k] for k in ("input_ms", "compute_ms", "exposed_comm_ms", "wait_ms"))
        assert total == pytest.approx(parts["measured_sum_ms"])
        assert parts["measured_sum_ms"] + parts["other_ms"] == pytest.approx(parts["step_ms"])
        for rank in parts["ranks"]:  # per rank, the parts are that rank's step in the blocks
            added = sum(rank[k] for k in ("input_ms", "compute_ms", "exposed_comm_ms", "wait_ms"))
            if rank["exposed_comm_ms"] > 0:
                assert added == pytest.approx(rank["sync_step_ms"])
            else:  # the sync step came out faster than the slowest local one (noise): exposure is held at 0
                assert added >= rank["sync_step_ms"] - 1e-9
        assert parts["step_ms"] / 2 <= total <= 2 * parts["step_ms"], (key, parts)
        within += abs(total - parts["step_ms"]) <= 0.20 * parts["step_ms"]
    assert within >= len(measured) // 2, {k: (r["breakdown"]["measured_sum_ms"], r["breakdown"]["step_ms"])
                                         for k, r in measured.items()}


def test_exposed_communication_is_near_zero_alone_and_positive_at_two(measured):
    for framework in ("torch", "tensorflow"):
        one, two = measured[(framework, 1)]["breakdown"], measured[(framework, 2)]["breakdown"]
        # small alone (DDP's reducer still runs at world size 1: a copy, no peer; 0.41 of a step seen in a CI run
        # where the machine ran at half its speed), well above it at 2
        assert one["exposed_comm_ms"] <= 0.5 * one["step_ms"], one
        assert two["exposed_comm_ms"] > 0 and two["exposed_comm_ms"] > 3 * one["exposed_comm_ms"], two
        bench = two["collective"]
        assert bench["busbw_peak_gb_per_s"] > 0 and len(bench["points"]) >= 5
        assert two["ring_bound_ms"] > 0 and two["allreduce_ms"] > 0
        # where the blocks' parts came out longer than the timed step (noise on 2 shared cores, seen in a CI run),
        # no overlap is claimed from them; otherwise it is a fraction
        if two["parts_exceed_step"]:
            assert "overlap_fraction" not in two, two
        else:
            assert 0 <= two["overlap_fraction"] <= 1, two
        assert two["backend"] in ("gloo", "RING") and "collective" not in one
        assert [r["rank"] for r in two["ranks"]] == [0, 1]


def test_the_breakdown_leaves_the_model_loss_and_accuracy_as_they_were(measured, tmp_path):
    off = copy.deepcopy(JOB)
    off["measure"] = {"breakdown": False}
    plain = sweep(off, tmp_path)
    for key, record in measured.items():
        assert plain[key].get("breakdown") is None
        assert plain[key]["final_loss"] == record["final_loss"], key
        assert plain[key].test_accuracy == record.test_accuracy, key
        assert plain[key]["measured_steps"] == record["measured_steps"], key


def test_a_four_times_larger_gradient_costs_more_communication(ray_session, tmp_path):
    """Torch at 2 workers, MLP 64-256-10 against 64-1024-10 (19,210 against 76,810 parameters)."""
    found = {}
    for hidden in (256, 1024):
        job = {**copy.deepcopy(JOB), "arms": JOB["arms"][:1], "sweep": {"workers": [2]},
               "workload": {"model": "mlp", "params": {"hidden": [hidden]}}}
        (record,) = sweep(job, tmp_path / str(hidden)).values()
        found[hidden] = record["breakdown"]
    small, large = found[256], found[1024]
    assert large["gradient_bytes"] == pytest.approx(4 * small["gradient_bytes"], rel=0.01)
    if large["allreduce_ms"] > small["allreduce_ms"] and large["exposed_comm_ms"] > small["exposed_comm_ms"]:
        return
    # Why not, on 2 shared cores: gloo over loopback between two processes on two busy cores costs a scheduling
    # round trip, ~1-2 ms here, whatever the size up to a few MB: the microbenchmark must show that latency floor.
    # Its typical point (the median), not its slowest: one point of eight can land on a preempted moment (2.7 ms
    # against a 0.8 ms floor, seen in CI), and that is the noise this branch exists for, not a missing floor.
    for bench in (small["collective"], large["collective"]):
        times = [p["time_ms"] for p in bench["points"]]
        assert statistics.median(times) < 3 * min(times) and bench["alpha_us"] > 500, bench
