"""The physical step-time model (orchestrator/physics.py) on breakdowns made by hand, its what-ifs through
`orchestrator recommend`, link rates, the emulated cluster's refusals, and the lost-node diagnosis."""

import json

import pytest
import yaml

from orchestrator import analysis, emulated, physics, rates, results, scaling
from orchestrator.cli import main
from orchestrator.errors import UserError
from tests.unit.test_report import record

MB = 1_000_000


def trial(workers, step_ms, local_ms=2.0, exposed_ms=None, per_worker=64, scaling_mode="weak", gradient=MB,
          alpha_s=1e-3, bus=1e8, nodes=None, wait_ms=0.0, repeat=0):
    """A record whose breakdown says: local (input + compute) ``local_ms``, the all-reduce's alpha at this
    count ``alpha_s`` and bus bandwidth ``bus`` bytes/s, exposed = step - local - wait unless given."""
    global_batch = per_worker * workers
    exposed = step_ms - local_ms - wait_ms if exposed_ms is None else exposed_ms
    bench = None
    if workers > 1:
        beta = (2 * (workers - 1) / workers) / bus
        points = [{"bytes": b, "time_ms": 1e3 * (alpha_s + beta * b)} for b in (4096, 1 << 20, 1 << 22)]
        for p in points:
            p["algbw_gbps"] = p["bytes"] / p["time_ms"] / 1e6
            p["busbw_gbps"] = p["algbw_gbps"] * 2 * (workers - 1) / workers
        bench = {"alpha_us": 1e6 * alpha_s, "beta_ns_per_kib": 1e9 * beta * 1024, "busbw_peak_gbps": bus / 1e9,
                 "points": points}
    return {**record("torch", "ddp", workers, repeat, 1e3 * global_batch / step_ms), "execution": "eager",
            "scaling": scaling_mode, "per_worker_batch": per_worker, "global_batch": global_batch,
            "nodes": nodes or [f"n{i}" for i in range(workers)],
            "breakdown": {"input_ms": 0.0, "compute_ms": local_ms, "wait_ms": wait_ms if workers > 1 else 0.0,
                          "exposed_comm_ms": exposed if workers > 1 else 0.0, "gradient_bytes": gradient,
                          "collective": bench, "step_ms": step_ms}}


def curve_of(lines):
    (curve,) = scaling.curves(results.latest(lines).ok)
    return curve


def test_the_step_is_local_compute_plus_the_ring_all_reduce_by_hand():
    # 2 workers: hop latency a = alpha / 2(n-1) = 0.5 ms; ring = 2(n-1) a + 2(n-1)/n S/B = 1 + 1e6/1e8 s = 11 ms;
    # no overlap (exposed = all of it), so the step is 2 + 11 = 13 ms.
    model = physics.fit_curve(curve_of([trial(1, 2.0), trial(2, 13.0)]))
    assert model.form == "additive" and model.overlap == pytest.approx(0.0, abs=1e-9)
    assert model.hop_latency_s == pytest.approx(0.5e-3) and model.bus_bytes_per_s == pytest.approx(1e8)
    assert model.predict(2) == pytest.approx(128 / 0.013)
    # 4 workers: ring = 2*3*0.5 + 1.5*10 = 18 ms (tree: 2*2*0.5 + 2*10 = 22 ms); step 20 ms; 256 samples.
    assert model.comm_ms(4) == pytest.approx(18.0)
    assert model.predict(4) == pytest.approx(256 / 0.020)
    # 64 workers: tree (2*6*0.5 + 20 = 26 ms) beats ring (2*63*0.5 + 2*63/64*10 = 82.7 ms), as NCCL's tuner picks.
    assert model.comm_ms(64) == pytest.approx(26.0)
    low, high = model.band(4)
    assert low <= model.predict(4) <= high


def test_measured_overlap_hides_that_share_of_the_all_reduce():
    # 2 workers: comm 11 ms, 5.5 ms exposed: overlap 0.5; at 4 workers half of 18 ms shows: step 2 + 9 = 11 ms.
    model = physics.fit_curve(curve_of([trial(1, 2.0), trial(2, 7.5)]))
    assert model.overlap == pytest.approx(0.5)
    assert model.predict(4) == pytest.approx(256 / 0.011)


def test_what_if_bandwidth_and_layout():
    base = physics.fit_curve(curve_of([trial(1, 2.0), trial(2, 13.0)]))
    # Measured over 800 Mbit/s links at 1e8 B/s: efficiency 1.0; at 8 Gbit/s the bus bandwidth is 1e9 B/s:
    # 4 workers: ring 3 ms latency + 1.5 ms = 4.5 ms, tree 2 ms + 2 ms = 4 ms (kept); step 6 ms.
    faster = base.with_layout(physics.Layout(inter_node_bps=8e9, measured_link_bps=8e8))
    assert faster.comm_ms(4) == pytest.approx(4.0)
    assert faster.predict(4) == pytest.approx(256 / 0.006)
    # Without the measured rate, the given rate is taken as the bus bandwidth itself.
    assert base.with_layout(physics.Layout(inter_node_bps=8e9)).bandwidth(4) == pytest.approx(1e9)
    # 4 workers per node with 80 Gbit/s inside a node: 4 workers stay on one node (1e10 B/s), 8 span two and
    # go at the slowest link: the measured inter-node one (the sweep ran one worker per node).
    packed = base.with_layout(physics.Layout(workers_per_node=4, intra_node_bps=8e10))
    assert packed.bandwidth(4) == pytest.approx(1e10) and packed.bandwidth(8) == pytest.approx(1e8)
    assert packed.predict(4) > base.predict(4)


def test_measured_on_one_node_a_what_if_across_nodes_takes_the_slower_link():
    one_node = [trial(1, 2.0, nodes=["a"]), trial(2, 13.0, nodes=["a"])]
    model = physics.fit_curve(curve_of(one_node))
    assert model.measured_workers_per_node is None  # intra-node measurement
    spread = model.with_layout(physics.Layout(workers_per_node=2, inter_node_bps=8e7))
    assert spread.bandwidth(2) == pytest.approx(1e8) and spread.bandwidth(4) == pytest.approx(1e7)


def test_strong_scaling_fits_compute_against_the_per_worker_batch():
    # Global batch 128: 1 worker b=128 local 5 ms, 2 workers b=64 local 3 ms: c0 = 1 ms, c1 = 1/32 ms a sample.
    lines = [trial(1, 5.0, local_ms=5.0, per_worker=128, scaling_mode="strong"),
             trial(2, 14.0, local_ms=3.0, per_worker=64, scaling_mode="strong")]
    model = physics.fit_curve(curve_of(lines))
    assert model.c0_ms == pytest.approx(1.0) and model.c1_ms == pytest.approx(1 / 32)
    assert model.local_ms(4) == pytest.approx(2.0)  # b = 32
    assert model.predict(4) == pytest.approx(128 / ((2.0 + 18.0) / 1e3))


def test_the_overlap_form_is_chosen_by_held_out_error():
    # Steps made by the Pollux form with g = 2: sqrt(local^2 + comm^2) at 2, 3 and 4 workers.
    lines = [trial(1, 2.0)]
    for n in (2, 3, 4):
        comm = physics.comm_ms(n, MB, 0.5e-3, 1e8)
        lines.append(trial(n, (2.0**2 + comm**2) ** 0.5, alpha_s=0.5e-3 * 2 * (n - 1)))
    model = physics.fit_curve(curve_of(lines))
    assert model.form == "pollux" and model.gamma == pytest.approx(2.0, abs=0.1)
    assert model.loo_error is not None and model.loo_error < 0.02


def test_no_breakdown_no_physical_model():
    plain = [record("torch", "ddp", 1, 0, 1000.0), record("torch", "ddp", 2, 0, 1800.0)]
    assert physics.fit_curve(curve_of(plain)) is None
    data = analysis.analyze(results.latest(plain))
    assert data["recommendations"][0]["model"] == "amdahl"
    assert "no step breakdown" in data["fits"][0]["chosen_because"]


def test_analysis_uses_the_physical_model_and_keeps_the_curve_fit_beside_it():
    data = analysis.analyze(results.latest([trial(1, 2.0), trial(2, 13.0)]))
    (rec,), (fitted,) = data["recommendations"], data["fits"]
    assert rec["model"] == fitted["model"] == "physical" and rec["layout"] is None
    assert "amdahl" == fitted["alternatives"]["curve_fit"]["model"]
    assert fitted["parts_at_recommended"]["step_ms"] > 0
    assert data["fits"][0]["predicted"][3]["throughput"] == pytest.approx(256 / 0.020)


def _sweep_dir(tmp_path, lines):
    for line in lines:
        results.append(tmp_path, line)
    return tmp_path


def test_recommend_bandwidth_what_if_in_the_report_and_the_emit(tmp_path, capsys):
    # 20 us of latency: on the measured links the step is bandwidth-bound (10 ms of 12)
    out = _sweep_dir(tmp_path / "sweep", [trial(1, 2.0), trial(2, 12.02, alpha_s=2e-5)])
    emit = tmp_path / "rec.yaml"
    assert main(["recommend", str(out), "--bandwidth", "100Gbit/s", "--measured-link", "800mbit",
                 "--workers-per-node", "8", "--max-workers", "64", "--emit", str(emit)]) == 0
    said = capsys.readouterr().out
    assert "what-if: 8 worker(s) per node, 100 Gbit/s between nodes, measured over 800 Mbit/s links" in said
    entry = yaml.safe_load(emit.read_text())["torch/ddp"]
    assert entry["model"] == "physical" and entry["what_if"]["inter_node_bps"] == 100e9
    assert entry["band"][0] <= entry["predicted_throughput"] <= entry["band"][1]
    # at 100 Gbit/s (12.5 GB/s bus bandwidth) the all-reduce is latency-bound: far more workers are worth it
    # than on the measured 800 Mbit/s links
    assert main(["recommend", str(out), "--max-workers", "64"]) == 0
    measured = json.loads((out / "report.json").read_text())["recommendations"][0]["workers"]
    assert entry["workers"] > measured
    # `orchestrator report` renders the stored what-if again
    assert main(["recommend", str(out), "--bandwidth", "100Gbit/s"]) == 0
    assert main(["report", str(out)]) == 0
    assert "100 Gbit/s between nodes" in (out / "report.md").read_text()


@pytest.mark.parametrize("argv, expected", [
    (["--bandwidth", "fast"], "--bandwidth 'fast': not a rate"),
    (["--bandwidth", "0gbit"], "--bandwidth '0gbit': must be above 0"),
    (["--workers-per-node", "0"], "--workers-per-node 0: must be between 1 and 4096"),
    (["--measured-link", "1gbit"], "--measured-link only carries the measured efficiency"),
])
def test_bad_what_if_flags_exit_2_naming_the_flag(tmp_path, capsys, argv, expected):
    out = _sweep_dir(tmp_path, [trial(1, 2.0), trial(2, 13.0)])
    assert main(["recommend", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_what_if_without_any_breakdown_is_refused(tmp_path, capsys):
    out = _sweep_dir(tmp_path, [record("torch", "ddp", 1, 0, 1000.0), record("torch", "ddp", 2, 0, 1800.0)])
    assert main(["recommend", str(out), "--bandwidth", "10gbit"]) == 2
    assert "measure.breakdown: true" in capsys.readouterr().err


@pytest.mark.parametrize("text, bits", [("300mbit", 300e6), ("1gbit", 1e9), ("100Gbit/s", 100e9), ("25GB/s", 200e9),
                                        ("1.5 Gbps", 1.5e9), ("800kbit", 800e3)])
def test_rates_as_people_write_them(text, bits):
    assert rates.parse(text, "--rate") == pytest.approx(bits)


def test_rates_show_and_tc():
    assert rates.show(300e6) == "300 Mbit/s" and rates.tc(1e9) == "1000000000bit"
    with pytest.raises(UserError, match="--rate '3 parsecs': not a rate"):
        rates.parse("3 parsecs", "--rate")


def test_emulated_cluster_refusals_exit_2(tmp_path, capsys, monkeypatch):
    state = ["--state", str(tmp_path)]
    assert emulated.main([*state, "up", "--rate", "warp9"]) == 2
    assert "--rate 'warp9': not a rate" in capsys.readouterr().err
    assert emulated.main([*state, "up", "--nodes", "64"]) == 2
    assert "--share-cores" in capsys.readouterr().err
    assert emulated.main([*state, "up", "--nodes", "0"]) == 2
    assert emulated.main([*state, "status"]) == 2
    assert "run 'up' first" in capsys.readouterr().err
    monkeypatch.setattr(emulated.os, "geteuid", lambda: 1000)
    assert emulated.main([*state, "up"]) == 2
    assert "needs root" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing made


def test_emulated_cluster_down_without_state_stops_nothing(tmp_path, capsys):
    assert emulated.main(["--state", str(tmp_path), "down"]) == 0
    assert "nothing to stop" in capsys.readouterr().err


def test_shared_cores_are_listed():
    nodes = [{"index": 0, "cores": [0]}, {"index": 1, "cores": [1]}, {"index": 2, "cores": [0]}]
    assert emulated.shared_cores(nodes) == {0: [0, 2]}


def test_a_worker_whose_node_was_lost_is_named_with_its_node(monkeypatch):
    from orchestrator import plan as plans, spec, trial as trials
    from tests.conftest import ROOT

    job_plan = plans.build(spec.load(ROOT / "jobs/smoke.yaml"))[1]
    workers = [
        {"rank": 0, "pid": 11, "hostname": "vm", "node_ip": "10.213.5.11", "node_id": "aa", "started_wall": 1.0,
         "records": [{"metrics": {"step": 40}, "wall": 3.0}], "finished_wall": None,
         "error": {"message": "RuntimeError: Timed out waiting 30000ms for recv operation", "wall": 5.0}},
        {"rank": 1, "pid": 12, "hostname": "vm", "node_ip": "10.213.5.12", "node_id": "bb", "started_wall": 1.0,
         "records": [{"metrics": {"step": 40}, "wall": 3.0}], "finished_wall": None},
    ]
    lost = trials.diagnose(RuntimeError("actor died"), job_plan, workers, {}, alive_nodes={"aa"})
    assert lost.details["kind"] == "node_lost"
    assert str(lost).startswith("node lost: rank 1 on node 10.213.5.12 (vm) (last step 40)")
    # The node still counted alive (the collective timed out first): the stall names the rank and its node.
    stalled = trials.diagnose(RuntimeError("timeout"), job_plan, workers, {}, alive_nodes={"aa", "bb"})
    assert stalled.details["kind"] == "collective_stall"
    assert "rank 1 (pid 12 on node 10.213.5.12 (vm), last step 40) never joined" in str(stalled)


def test_collective_terms_take_bandwidth_from_large_messages_and_latency_from_small_ones():
    # 2 ranks (bus factor 1): 2 ms latency, 10 MB/s; a link burst makes the 32 KiB message look faster.
    points = [{"bytes": b, "time_ms": 1e3 * (2e-3 + b / 1e7)} for b in (4096, 8192, 1 << 18, 1 << 20, 1 << 22)]
    points.append({"bytes": 1 << 15, "time_ms": 1e3 * 2e-3})
    alpha, bus = physics.collective_terms(points, 2, 1 << 20)
    assert bus == pytest.approx(1e7, rel=1e-6) and alpha == pytest.approx(2e-3, rel=1e-3)


def test_an_all_reduce_that_costs_more_inside_the_step_than_alone_is_negative_overlap():
    # comm alone 11 ms at 2 workers, but the step is 2 + 16.5: exposure 1.5x, overlap -0.5
    model = physics.fit_curve(curve_of([trial(1, 2.0), trial(2, 18.5)]))
    assert model.overlap == pytest.approx(-0.5)
    assert model.predict(4) == pytest.approx(256 / ((2.0 + 1.5 * 18.0) / 1e3))
