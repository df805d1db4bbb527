"""Numbers that stay true under edits, resumes and odd inputs (issue #33): each case failed on the main before.

Pure parts and the CLI's refusals, no Ray: mixed plans in one curve, cost answers that cannot differ,
strong-scaling candidates, a changed job's checkpoints, the results file (two writers, a torn line), numeric
flags, bandwidth names, the first-rendezvous stall, the emulated cluster's pure parts.
"""

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from orchestrator import report
from orchestrator.job import plan, spec
from orchestrator.measuring import measure, results
from orchestrator.modelling import analysis, scaling
from orchestrator.measuring import locks
from orchestrator.running import emulated, training
from orchestrator.cli import main
from orchestrator.errors import UserError
from orchestrator.workloads import data
from tests.conftest import ROOT
from tests.unit.test_report import record


def exit_code(argv: list[str]) -> int:
    """main's exit status, whether argparse exits (a flag's type) or main returns (a UserError)."""
    try:
        return main(argv)
    except SystemExit as exited:
        return exited.code


def job(**changes):
    raw = yaml.safe_load((ROOT / "jobs/digits-mlp.yaml").read_text())
    for key, value in changes.items():  # a batch is replaced whole (per_worker and global exclude each other)
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) and key != "batch" else value
    return spec.parse(raw)


def line(p: plan.TrialPlan, rate: float, status: str = "ok") -> dict:
    """A results line for plan ``p`` as the scheduler writes it (its plan fields), with a throughput."""
    fields = {k: v for k, v in p.to_dict().items() if k not in ("train_config", "env", "controller_env")}
    return {**fields, "status": status, "samples_per_sec": rate, "step_time_mean_s": 1.0, "error": None}


# --- 1. one curve, one plan -----------------------------------------------------------------------------------

def test_a_curve_hash_ignores_the_worker_count_and_repeat_and_nothing_else():
    base = job(arms=[{"framework": "torch", "strategy": "ddp"}], sweep={"workers": [1, 2, 4], "repeats": 2})
    hashes = {p.curve_hash for p in plan.build(base)}
    assert len(hashes) == 1
    wider = job(arms=[{"framework": "torch", "strategy": "ddp"}], sweep={"workers": [1, 3], "repeats": 1})
    assert {p.curve_hash for p in plan.build(wider)} == hashes  # which points: not what a point measures
    for edit in ({"batch": {"per_worker": 16}}, {"training": {"learning_rate": 0.1}},
                 {"workload": {"model": "mlp", "params": {"hidden": [64]}}}):
        edited = job(arms=[{"framework": "torch", "strategy": "ddp"}], sweep={"workers": [1, 2, 4], "repeats": 2},
                     **edit)
        assert {p.curve_hash for p in plan.build(edited)} != hashes, edit
    # Strong scaling over epochs: per-worker batch and steps differ at each count; one curve all the same.
    strong = job(arms=[{"framework": "torch", "strategy": "ddp"}], batch={"global": 64, "scaling": "strong"},
                 training={"steps": None, "epochs": 1}, sweep={"workers": [1, 2, 4]})
    assert len({p.curve_hash for p in plan.build(strong)}) == 1
    assert len({p.per_worker_batch for p in plan.build(strong)}) == 3


def test_the_curve_hash_follows_the_plan_not_how_the_job_is_written():
    arms = [{"framework": "torch", "strategy": "ddp"}]
    base = {p.curve_hash for p in plan.build(job(arms=arms))}
    explicit = job(arms=arms, resources={"cpus_per_worker": 1, "threads_per_worker": 1})  # the defaults, written out
    assert {p.curve_hash for p in plan.build(explicit)} == base
    # Weak scaling with batch.global: the per-worker batch is global / the smallest count, so a sweep of [2, 4]
    # runs other points than one of [1, 2] at the same count.
    one = job(arms=arms, batch={"global": 128}, sweep={"workers": [1, 2]})
    two = job(arms=arms, batch={"global": 128}, sweep={"workers": [2, 4]})
    assert {p.curve_hash for p in plan.build(one)} != {p.curve_hash for p in plan.build(two)}


def test_the_curve_hash_is_a_label_old_results_still_count_as_done():
    p = plan.build(job())[0]
    assert "curve_hash" not in p.identity()


def _edited_rerun(tmp_path):
    """Sweep of [1, 2] at per_worker 32, then the job edited to 16 and the rerun stopped after its first trial."""
    arms = [{"framework": "torch", "strategy": "ddp"}]
    before = [p for p in plan.build(job(arms=arms, sweep={"workers": [1, 2]})) if p.repeat == 0]
    after = [p for p in plan.build(job(arms=arms, sweep={"workers": [1, 2]}, batch={"per_worker": 16}))
             if p.repeat == 0]
    for p, rate in ((before[0], 1000.0), (before[1], 1800.0), (after[0], 600.0)):
        results.append(tmp_path, line(p, rate))
    return before, after


def test_points_of_an_earlier_plan_are_stale_left_out_and_named(tmp_path):
    before, after = _edited_rerun(tmp_path)
    found = results.load(tmp_path)
    assert [r.trial_id for r in found.stale] == [before[1].trial_id]
    (curve,) = scaling.curves(found.ok)
    assert [p.workers for p in curve.points] == [1]  # no efficiency across two per-worker batches
    report.render(tmp_path)
    data_ = json.loads((tmp_path / "report.json").read_text())
    assert data_["trials"]["stale"][0]["workers"] == 2 and data_["fits"] == [] and data_["verdict"] is None
    assert "Stale, left out of every curve, efficiency, fit and verdict: torch/ddp at 2 worker(s)" in \
        (tmp_path / "report.md").read_text()
    # ... and the next sweep measures it again: its plan hash is not the new plan's.
    done = results.completed(results.read(tmp_path))
    from orchestrator.running.scheduler import plan_hash

    assert done[after[1].trial_id].get("plan_hash") != plan_hash(after[1])


# --- 2. cost answers that can differ ------------------------------------------------------------------------------

def _weak_dir(tmp_path):
    arms = [{"framework": "torch", "strategy": "ddp"}]
    for p, rate in zip([p for p in plan.build(job(arms=arms, sweep={"workers": [1, 2, 4]})) if p.repeat == 0],
                       (1000.0, 1950.0, 3800.0)):
        results.append(tmp_path, {**line(p, rate), "steps": 800, "global_batch": 32 * p.workers})
    return tmp_path


def test_default_length_is_a_fixed_amount_of_work_so_a_deadline_can_pick_more_workers(tmp_path, capsys):
    out = _weak_dir(tmp_path)
    # 800 steps x 32 samples = 25,600 samples: 25.6 s at 1 worker, 13.1 s at 2, 6.7 s at 4.
    assert main(["recommend", str(out), "--price", "cpu=3.6", "--deadline", "10s", "--max-workers", "4"]) == 0
    said = capsys.readouterr().out
    priced = json.loads((out / "report.json").read_text())["cost"]
    assert priced["length"]["samples"] == 25600
    (answer,) = priced["answers"]
    cheapest = answer["cheapest_within_deadline"]
    assert cheapest["workers"] > 2 and cheapest["seconds"] <= 10  # 1 and 2 workers take 25.6 and 13.1 s
    rows = {r["workers"]: r for r in priced["rows"]}
    assert rows[2]["measured"] and rows[2]["seconds"] == pytest.approx(25600 / 1950.0)  # measured, not modelled
    assert "Training 25,600 samples, the samples the 1-worker trials of" in said


def test_steps_under_weak_scaling_are_refused_with_the_reason(tmp_path, capsys):
    out = _weak_dir(tmp_path)
    assert main(["recommend", str(out), "--price", "cpu=1", "--train-steps", "1000", "--deadline", "1h"]) == 2
    err = capsys.readouterr().err
    assert "--train-steps 1000: " in err and "scales weakly" in err and "--epochs" in err
    assert not (out / report.SETTINGS).exists()


# --- 3. strong-scaling candidates ------------------------------------------------------------------------------

def test_strong_scaling_recommends_only_counts_that_divide_the_global_batch(tmp_path):
    arms = [{"framework": "torch", "strategy": "ddp"}]
    strong = job(arms=arms, batch={"global": 12, "scaling": "strong"}, sweep={"workers": [1, 2]})
    for p, rate in zip([p for p in plan.build(strong) if p.repeat == 0], (1000.0, 1990.0)):
        results.append(tmp_path, line(p, rate))
    found = results.load(tmp_path)
    data_ = analysis.analyze(found, {"max_workers": 16, "threshold": 0.5})
    (rec,) = data_["recommendations"]
    assert 12 % rec["workers"] == 0 and rec["capped"] and rec["largest_count"] == 12
    (fitted,) = data_["fits"]
    assert [p["workers"] for p in fitted["predicted"]] == [1, 2, 3, 4, 6, 12]
    job_at = spec.at_scale(strong, "torch/ddp", rec["workers"])  # what `train --from-report` validates
    assert job_at.per_worker_batch(rec["workers"]) >= 1


def test_recommendations_are_counts_whose_shards_still_hold_a_batch():
    arms = [{"framework": "torch", "strategy": "ddp"}]
    default = job(arms=arms, sweep={"workers": [1, 2]})
    plans = [p for p in plan.build(default) if p.repeat == 0]
    records = results.typed([line(p, rate) for p, rate in zip(plans, (1000.0, 1990.0))])
    (curve,) = scaling.curves(records)
    counts = analysis.accepted_counts(curve, 64)
    assert max(counts) == plans[0].train_samples // plans[0].per_worker_batch and all(spec.at_scale(default, "torch/ddp", n) for n in counts[-3:])
    with pytest.raises(spec.SpecError):
        spec.at_scale(default, "torch/ddp", max(counts) + 1)


def test_train_at_a_size_keeps_the_per_worker_batch_the_sweep_ran():
    swept = job(arms=[{"framework": "torch", "strategy": "ddp"}], batch={"global": 128}, sweep={"workers": [1, 2]})
    assert plan.training_plan(swept, "torch/ddp", 4).per_worker_batch == 128  # not 128 / 4


# --- 4. resuming a changed training job -------------------------------------------------------------------------

def test_a_changed_plan_never_resumes_the_old_checkpoints(tmp_path):
    old = plan.training_plan(job(), "torch/ddp", 2)
    new = plan.training_plan(job(training={"learning_rate": 0.2}), "torch/ddp", 2)
    from orchestrator.running.scheduler import plan_hash

    run_dir = tmp_path / old.run_name
    (run_dir / "checkpoint_000001").mkdir(parents=True)
    assert "pass --fresh" in training.resume_problem(run_dir, plan_hash(new), new.identity())  # no plan kept
    (run_dir / training.PLAN).write_text(json.dumps({"plan_hash": plan_hash(old), "plan": old.identity()}))
    problem = training.resume_problem(run_dir, plan_hash(new), new.identity())
    assert "train_config.learning_rate: 0.05 -> 0.2" in problem and "--fresh" in problem
    assert training.resume_problem(run_dir, plan_hash(old), old.identity()) is None


def test_train_refuses_a_changed_job_before_starting_anything(tmp_path, capsys):
    spec_file = tmp_path / "job.yaml"
    raw = yaml.safe_load((ROOT / "jobs/digits-mlp.yaml").read_text())
    raw["arms"] = [{"framework": "torch", "strategy": "ddp"}]
    old = plan.training_plan(spec.parse(raw), "torch/ddp", 1)
    raw["workload"]["params"] = {"hidden": [32]}
    spec_file.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    run_dir = out / "ray_storage" / old.run_name
    (run_dir / "checkpoint_000003").mkdir(parents=True)
    from orchestrator.running.scheduler import plan_hash

    (run_dir / training.PLAN).write_text(json.dumps({"plan_hash": plan_hash(old), "plan": old.identity()}))
    assert main(["train", str(spec_file), "--workers", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "checkpoints of another version of this run" in err and "hidden" in err and "Traceback" not in err


def test_the_data_stream_resumes_where_the_checkpoint_was():
    x, y = np.arange(100.0).reshape(50, 2), np.arange(50)
    whole = data.batches(x, y, 8, seed=3)
    seen = [next(whole)[1].tolist() for _ in range(20)]  # 6 batches a pass: passes 0-3
    for start in (0, 1, 5, 6, 13):
        resumed = data.batches(x, y, 8, seed=3, start=start)
        assert [next(resumed)[1].tolist() for _ in range(20 - start)] == seen[start:]


# --- 5. the results file ---------------------------------------------------------------------------------------

def _append_many(out: str, writer: int, count: int) -> None:
    for i in range(count):
        results.append(out, {"trial_id": f"w{writer}-{i}", "framework": "torch", "strategy": "ddp", "workers": 1,
                             "pad": "x" * (3000 + 17 * i)})  # lines longer than a pipe buffer's atomic write


def test_two_processes_appending_at_once_lose_no_line(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_append_many, args=(str(tmp_path), w, 150)) for w in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    found = results.scan(tmp_path)
    assert found.torn == [] and len(found.lines) == 300
    assert {r["trial_id"] for r in found.lines} == {f"w{w}-{i}" for w in range(2) for i in range(150)}


def test_report_of_a_hand_edited_line_exits_2_in_one_line(tmp_path, capsys):
    results.append(tmp_path, record("torch", "ddp", 1, 0, 1000.0))
    with open(tmp_path / results.FILENAME, "a") as handle:
        handle.write("{}\n")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a trial record" in err and "Traceback" not in err


def test_a_torn_last_line_is_reported_and_skipped_and_the_next_record_gets_its_own_line(tmp_path):
    results.append(tmp_path, record("torch", "ddp", 1, 0, 1000.0))
    with open(tmp_path / results.FILENAME, "ab") as handle:
        handle.write(b'{"trial_id": "torch-ddp-mlp-w2-r0", "framework": "to')  # killed mid-write
    results.append(tmp_path, record("torch", "ddp", 2, 0, 1800.0))
    found = results.scan(tmp_path)
    assert found.torn == [2] and [r["workers"] for r in found.lines] == [1, 2]
    report.render(tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["trials"]["torn_lines"] == [2]
    assert "Line(s) 2 of results.jsonl are not JSON" in (tmp_path / "report.md").read_text()


def test_appends_and_reports_never_touch_the_process_umask(tmp_path, monkeypatch):
    def forbidden(*_):
        raise AssertionError("os.umask is process-wide: the recorder and watchdog threads race it")

    old = os.umask(0o027)
    os.umask(old)
    monkeypatch.setattr(os, "umask", forbidden)
    results.append(tmp_path, record("torch", "ddp", 1, 0, 1000.0))
    results.write_atomic(tmp_path / "report.md", "x")
    mode = (tmp_path / "report.md").stat().st_mode & 0o777
    assert mode == 0o666 & ~old


def test_a_second_writer_on_one_out_is_refused_with_who_holds_it(tmp_path):
    with locks.claim(tmp_path, "sweep"):
        with pytest.raises(UserError, match=r"pid \d+ .*`orchestrator sweep` since .* is writing there; wait"):
            with locks.claim(tmp_path, "sweep"):
                pass
    with locks.claim(tmp_path, "train"):  # released when the first one ended
        pass


def test_a_second_sweep_on_the_same_out_exits_2_before_starting_ray(tmp_path, capsys):
    with locks.claim(tmp_path, "sweep"):
        assert main(["sweep", str(ROOT / "jobs/smoke.yaml"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is writing there" in err and len(err.strip().splitlines()) == 1


# --- 6. numeric inputs -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, flag", [
    (["--price", "cpu=1", "--deadline", "nan"], "--deadline"), (["--price", "cpu=1", "--deadline", "inf"], "--deadline"),
    (["--price", "cpu=1", "--budget", "inf"], "--budget"), (["--price", "cpu=1", "--budget", "nan"], "--budget"),
    (["--price", "cpu=1", "--budget", "-1"], "--budget"), (["--price", "cpu=nan"], "--price"),
    (["--price", "cpu=-2"], "--price"), (["--price", "cpu=inf"], "--price"), (["--threshold", "nan"], "--threshold"),
    (["--threshold", "1.5"], "--threshold"), (["--threshold", "0"], "--threshold"),
    (["--max-workers", "0"], "--max-workers"), (["--max-workers", "2.5"], "--max-workers"),
    (["--price", "cpu=1", "--epochs", "inf"], "--epochs"), (["--price", "cpu=1", "--epochs", "0"], "--epochs"),
    (["--price", "cpu=1", "--train-steps", "-3"], "--train-steps"), (["--workers-per-node", "0"], "--workers-per-node"),
    (["--bandwidth", "nanGbit/s"], "--bandwidth"), (["--bandwidth", "0mbit"], "--bandwidth"),
])
def test_every_numeric_flag_is_finite_and_in_range_or_exit_2_naming_it(tmp_path, capsys, argv, flag):
    out = _weak_dir(tmp_path)
    assert exit_code(["recommend", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv", [["share", "x", "--cpus", "nan"], ["share", "x", "--cpus", "-4"],
                                  ["train", "jobs/smoke.yaml", "--workers", "0"],
                                  ["k8s", "render", "jobs/smoke.yaml", "--workers", "inf"]])
def test_other_commands_numeric_flags(capsys, argv):
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert "must be" in err or "not a whole number" in err, err


# --- 7. bandwidths in their unit ---------------------------------------------------------------------------------

def test_bandwidth_fields_are_named_in_gigabytes_and_old_records_still_read():
    from orchestrator.measuring import breakdown

    out = breakdown.collective([{"bytes": 1 << 20, "seconds": 1e-3}, {"bytes": 4 << 20, "seconds": 4e-3}], 2)
    assert "busbw_peak_gb_per_s" in out and "busbw_gb_per_s" in out["points"][0] and "algbw_gb_per_s" in out["points"][0]
    assert not any("gbps" in k for k in json.dumps(out).split('"'))
    old = {**record("torch", "ddp", 2, 0, 1800.0), "schema": 4,
           "breakdown": {"collective": {"busbw_peak_gbps": 1.5, "points": [{"bytes": 1, "busbw_gbps": 1.5,
                                                                            "algbw_gbps": 1.5}]}}}
    parsed = results.parse(old)
    bench = parsed.get("breakdown")["collective"]
    assert bench["busbw_peak_gb_per_s"] == 1.5 and bench["points"][0]["busbw_gb_per_s"] == 1.5
    assert results.SCHEMA_VERSION >= 5


# --- 8. a rank that never reaches the first rendezvous ------------------------------------------------------------

def _view(rank, rendezvous=None, joined=None, **extra):
    return {"rank": rank, "pid": 100 + rank, "hostname": "h", "node_ip": f"10.0.0.{rank}", "node_id": "n",
            "registered_wall": 0.0, "rendezvous_wall": rendezvous, "joined_wall": joined, "finished_wall": None,
            "error": False, "last_step": None, **extra}


def test_rendezvous_stall_names_the_rank_that_never_reached_it_once_the_wait_passes_the_timeout():
    waiting = [_view(0, rendezvous=100.0), _view(1)]
    assert measure.rendezvous_stall(waiting, 2, 10, now_wall=109.0) is None  # within the bound
    stall = measure.rendezvous_stall(waiting, 2, 10, now_wall=111.0)
    assert [s["rank"] for s in stall["stalled"]] == [1] and stall["waited"] == [0]
    message = measure.rendezvous_message(stall, "MultiWorkerMirroredStrategy's first barrier", 10)
    assert message.startswith("collective stalled: rank 1 (pid 101 on node 10.0.0.1 (h)") and "never joined" in message
    assert "gave up after 10 s (reliability.collective_timeout_s)" in message
    # A rank whose process never registered is named too; every rank in, or one joined: not this stall.
    assert measure.rendezvous_stall([_view(0, rendezvous=100.0)], 2, 10, 111.0)["stalled"][0]["started"] is False
    assert measure.rendezvous_stall([_view(0, 100.0), _view(1, 101.0)], 2, 10, 200.0) is None
    assert measure.rendezvous_stall([_view(0, 100.0, joined=105.0), _view(1)], 2, 10, 200.0) is None
    died = [_view(0, rendezvous=100.0, error=True), _view(1)]
    assert measure.rendezvous_stall(died, 2, 10, 200.0) is None
    assert measure.rendezvous_stall(died, 2, 10, 200.0, after_failure=True)["stalled"][0]["rank"] == 1


# --- 9. the emulated cluster on other machines -------------------------------------------------------------------

def test_emulated_nodes_are_pinned_to_the_cores_this_process_may_use():
    assert emulated.node_cores(0, 1, [4, 6], unpinned=False) == [4]
    assert emulated.node_cores(3, 1, [4, 6], unpinned=False) == [6]
    assert emulated.node_cores(1, 2, [2, 5, 7], unpinned=False) == [2, 7]
    assert emulated.node_cores(5, 1, [4, 6], unpinned=True) == [4, 6]
    assert emulated.usable_cores() == sorted(os.sched_getaffinity(0))


def test_a_link_bucket_holds_two_gso_packets_or_two_ms_at_the_rate():
    assert emulated.tbf_bucket_bytes(100e6) == emulated.tbf_bucket_bytes(400e6) == 128 * 1024
    assert emulated.tbf_bucket_bytes(1e9) == 250_000  # 2 ms at 1 Gbit/s
    assert all(emulated.tbf_bucket_bytes(r) > emulated.GSO_MAX_BYTES + 100 for r in (1e6, 50e6, 10e9))


def test_a_recorded_pid_is_only_ours_while_its_start_time_matches():
    fields = emulated.stat_fields(Path("/proc/self/stat").read_text())
    started = int(fields[19])
    assert emulated.same_process(fields, started) and emulated.same_process(fields, None)
    assert not emulated.same_process(fields, started + 1)  # the pid now belongs to a later process
    assert not emulated.same_process(["Z"] + fields[1:], started)
    assert emulated.stat_fields("42 (a b) c) S 1 42 42")[:3] == ["S", "1", "42"]


def test_node_processes_are_matched_by_whole_path_not_prefix():
    assert emulated.mentions(b"raylet\0--temp-dir=/tmp/oe/n1-1\0", "/tmp/oe/n1-1")
    assert emulated.mentions(b"python\0/tmp/oe/n1-1/session/x.py\0", "/tmp/oe/n1-1")
    assert not emulated.mentions(b"raylet\0--temp-dir=/tmp/oe/n1-10\0", "/tmp/oe/n1-1")
    assert not emulated.mentions(b"raylet\0/tmp/oe/n1-1x/a\0", "/tmp/oe/n1-1")
    assert not emulated.mentions(b"raylet\0/x/tmp/oe/n1-1\0", "/tmp/oe/n1-1")


def test_the_subnet_search_wraps_round():
    taken = " ".join(f"10.213.{i}.0/24" for i in range(200, 256)) + " default via 10.0.0.1 dev eth0"
    assert str(emulated.free_subnet(taken, 230)) == "10.213.0.0/24"
    assert str(emulated.free_subnet(taken, 10)) == "10.213.10.0/24"
    assert emulated.free_subnet("10.213.0.0/16", 5) is None


@pytest.mark.parametrize("price", [float("nan"), float("inf"), -0.5])
def test_a_jobs_pricing_block_is_finite_and_not_negative(price):
    with pytest.raises(spec.SpecError, match="pricing: .*a price must be a finite number, 0 or more"):
        job(pricing={"cpu": price})
