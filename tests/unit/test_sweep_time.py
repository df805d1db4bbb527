"""Where a sweep's time went (issue 22): each trial's wall time split from its own record, the sweep's own time
between trials, and the report's account of it; pure, from hand-made records."""

import json

import pytest

from orchestrator import report
from orchestrator.report import prose
from orchestrator.measuring import results
from orchestrator.modelling import analysis
from tests.unit.test_report import record


def trial(arm="torch/ddp", workers=1, repeat=0, wall=10.0, to_step=4.0, first=0.5, training=3.0, use=1,
          before=1.0, breakdown_s=None, export_s=None, status="ok", run=("run1", 0.0), **extra):
    framework, strategy = arm.split("/")
    line = {"trial_id": f"{arm.replace('/', '-')}-mlp-w{workers}-r{repeat}", "job": "demo", "arm": arm,
            "framework": framework, "strategy": strategy, "execution": "eager" if framework == "torch" else "compiled",
            "workload": "mlp", "workers": workers, "repeat": repeat, "status": status, "error": None,
            "samples_per_sec": 1000.0 * workers, "wall_time_s": wall, "time_to_first_step_s": to_step + first,
            "first_step_s": first, "training_s": training, "worker_reuse": {"group": f"g{workers}", "use": use,
                                                                             "shared_with": [], "pids": [1]},
            "sweep_run": results.sweep_run(*run, before), **extra}
    if breakdown_s is not None:
        line["breakdown"] = {"seconds": breakdown_s, "workers": workers}
    if export_s is not None:
        line["deployment"] = {"dir": "export/x", "models": [], "seconds": export_s}
    return line


def test_a_trials_parts_add_up_to_its_wall_time():
    parts = results.time_parts(trial(wall=10.0, to_step=4.0, first=0.5, training=3.0, breakdown_s=1.5, export_s=0.5))
    assert parts["to_first_step_s"] == pytest.approx(4.0)
    assert parts["training_s"] == pytest.approx(3.0)  # the first step (tracing) is training's
    assert parts["after_training_s"] == pytest.approx(3.0)
    assert sum(parts[k] for k in ("to_first_step_s", "training_s", "after_training_s")) == pytest.approx(10.0)
    assert (parts["breakdown_s"], parts["export_s"]) == (1.5, 0.5)


@pytest.mark.parametrize("change", [{"status": "failed"}, {"failures": 1}, {"time_to_first_step_s": None},
                                    {"training_s": None}])
def test_records_that_cannot_tell_are_not_split(change):
    """Failed trials, trials restarted after a failure, a user's function (no steps), lines from before."""
    assert results.time_parts({**trial(), **change}) is None


def test_the_sweep_account_splits_fresh_starts_from_reused_ones_and_counts_everything():
    lines = [trial(repeat=0, use=1, to_step=5.0, before=7.0, breakdown_s=0.2, export_s=2.0),
             trial(repeat=1, use=2, to_step=0.1, wall=6.1, before=0.3, breakdown_s=0.2),
             trial(workers=2, repeat=0, use=1, to_step=6.0, wall=12.0, before=0.4, breakdown_s=1.0),
             trial(workers=2, repeat=1, status="failed", wall=2.5, before=0.2)]
    spent = analysis.sweep_time(results.typed(lines))
    assert spent["fresh_worker_starts"] == 2 and spent["fresh_to_first_step_s"] == pytest.approx(11.0)
    assert spent["reused_trials"] == 1 and spent["reused_to_first_step_s"] == pytest.approx(0.1)
    assert spent["orchestrator_s"] == pytest.approx(7.9) and spent["failed_trials_s"] == pytest.approx(2.5)
    walls = 10.0 + 6.1 + 12.0 + 2.5
    assert spent["total_s"] == pytest.approx(walls + 7.9)
    assert spent["training_share"] == pytest.approx(9.0 / (walls + 7.9))
    assert (spent["breakdown_s"], spent["export_s"]) == (pytest.approx(1.4), pytest.approx(2.0))
    assert (spent["breakdowns"], spent["exports"]) == (3, 1)
    assert [(r["workers"], r["trials"]) for r in spent["rows"]] == [(1, 2), (2, 1)]
    text = prose.sweep_time_sentence(spent)
    assert text.startswith(f"Training took 9.0 s of the sweep's {walls + 7.9:.1f} s (") and spent["invocations"] == [4]
    for part in ("2 start(s) of fresh worker processes 11.0 s", "1 trial(s) in reused ones 0.1 s",
                 "the step breakdown 1.4 s in 3 trial(s)", "the deployment exports 2.0 s in 1",
                 "Ray's start, planning and between trials 7.9 s", "failed trials 2.5 s"):
        assert part in text, (part, text)


def test_a_resumed_sweep_adds_up_both_invocations_and_says_so():
    """A sweep killed after its first trials, then run again on the same --out: the account is both runs'."""
    first = [trial(repeat=0, before=7.0, run=("a", 100.0)), trial(repeat=1, use=2, before=0.3, run=("a", 100.0)),
             trial(workers=2, status="failed", wall=2.0, run=("a", 100.0))]
    resumed = [trial(workers=2, before=6.0, run=("b", 900.0))]
    spent = analysis.sweep_time(results.typed(resumed + first))
    assert spent["invocations"] == [3, 1]  # in the order they ran, whatever the file's order
    assert spent["orchestrator_s"] == pytest.approx(7.0 + 0.3 + 1.0 + 6.0)
    assert spent["failed_trials_s"] == pytest.approx(2.0)
    assert prose.sweep_time_sentence(spent).startswith(
        "Over 2 invocations of the sweep on these results (3 and 1 trials, in the order they ran: a resume or a "
        "rerun adds to the results before it), training took 9.0 s of the sweep's ")


def test_notes_say_what_costs_more_than_the_training():
    cheap = analysis.sweep_time(results.typed([trial(to_step=1.0, training=3.0, wall=4.5, breakdown_s=0.2)]))
    assert prose.sweep_time_notes(cheap) == []
    costly = analysis.sweep_time(results.typed([trial(to_step=5.0, training=1.0, wall=12.0, breakdown_s=3.0,
                                                      export_s=2.0)]))
    assert any("measure.breakdown: false" in n for n in prose.sweep_time_notes(costly))
    assert any("sweep.reuse_workers" in n for n in prose.sweep_time_notes(costly))


def test_no_account_without_a_record_that_can_tell():
    assert analysis.sweep_time(results.typed([trial(status="failed")])) is None
    assert analysis.sweep_time([]) is None


def test_reports_show_it(tmp_path):
    for line in (trial(repeat=0, breakdown_s=0.5), trial(repeat=1, use=2, to_step=0.1, wall=6.0)):
        results.append(tmp_path, {**record("torch", "ddp", 1, line["repeat"], 1000), **line})
    report.render(tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    md, page = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    assert "## Where the sweep's time went" in md and data["sweep_time"]["sentence"] in md
    assert "<h2>Where the sweep's time went</h2>" in page
    assert "| torch ddp | 1 | 2 | 4.1 s | 6.0 s |" in md
