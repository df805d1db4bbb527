"""The files a trial's workers wrote (TensorBoard event files, exported models), placed in the run's
directory and summarised for its record.

A worker writes ``<kind>/<path>`` under its artifacts directory (see launchers/harness.py); it lands at
``OUT/<kind>/<trial_id>/<path>``, so ``tensorboard --logdir OUT/tensorboard`` shows one run per trial.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from orchestrator.measuring import results

DEPLOY_SUMMARY = "deploy.json"


def destination(relative: str, trial_id: str) -> PurePosixPath:
    """Where ``<kind>/<path>`` from a worker goes under OUT; refuses paths that would leave it."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"artifact path {relative!r} leaves the artifacts directory")
    if len(path.parts) == 1:
        return PurePosixPath("files", trial_id, path.name)
    return PurePosixPath(path.parts[0], trial_id, *path.parts[1:])


def save(out_dir: Path, trial_id: str, files: dict[str, bytes], skipped: list[str]) -> dict:
    """Write the files (each atomically) and return what the trial's record keeps about them."""
    if not files and not skipped:
        return {}
    written, problems = [], list(skipped)
    for relative, content in sorted(files.items()):
        try:
            target = destination(relative, trial_id)
        except ValueError as err:
            problems.append(str(err))
            continue
        results.write_atomic(out_dir / target, content)
        written.append(target.as_posix())
    kinds = sorted({PurePosixPath(p).parts[0] for p in written})
    record: dict = {"artifacts": {"dirs": {kind: f"{kind}/{trial_id}" for kind in kinds}, "files": written,
                                  "skipped": problems}}
    logdir = out_dir / "tensorboard" / trial_id
    if logdir.is_dir():
        from orchestrator.measuring import tensorboard

        try:
            record["tensorboard"] = {"logdir": f"tensorboard/{trial_id}", **tensorboard.summary(logdir)}
        except Exception as err:  # a file TensorBoard cannot read is reported, not fatal to the trial
            record["tensorboard"] = {"logdir": f"tensorboard/{trial_id}", "error": f"{type(err).__name__}: {err}"}
    summary = out_dir / "export" / trial_id / DEPLOY_SUMMARY
    if summary.is_file():
        deployed = json.loads(summary.read_text())
        record["deployment"] = {"dir": f"export/{trial_id}", "test_samples": deployed.get("test_samples"),
                                **({"dataset": deployed["dataset"]} if deployed.get("dataset") else {}),
                                "models": deployed.get("models", []),
                                **({"seconds": deployed["seconds"]} if "seconds" in deployed else {})}
    return record
