"""The ``orchestrator`` command: parse arguments, call the library, map errors to exit codes.

Exit codes: 0 success; 1 some trials failed (the reports still list them); 2 bad input (job spec, arguments,
a cluster too small for the sweep); 130 interrupted.

    orchestrator sweep jobs/digits-mlp.yaml --out reports/digits-mlp     run a sweep, write the reports
    orchestrator sweep jobs/digits-mlp.yaml --dry-run                   print the plan, start nothing
    orchestrator report reports/digits-mlp                              re-render reports from results.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from orchestrator.errors import OrchestratorError, UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(2, f"orchestrator: error: {message} (see 'orchestrator {self.prog.split()[-1]} --help')\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="orchestrator", description="Measure how a training job scales in PyTorch and TensorFlow on Ray.")
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sweep = commands.add_parser("sweep", help="run every (arm, worker count, repeat) of a job and report")
    sweep.add_argument("job", help="job spec, e.g. jobs/digits-mlp.yaml")
    sweep.add_argument("--out", help="output directory (default: reports/<job name>)")
    sweep.add_argument("--address", help="Ray cluster to attach to (default: RAY_ADDRESS, else an embedded local cluster)")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan as JSON and start nothing")
    sweep.add_argument("--verbose", action="store_true", help="show Ray's and the workers' logs")

    rep = commands.add_parser("report", help="re-render the reports of DIR from its results.jsonl")
    rep.add_argument("dir", help="a sweep's output directory")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "sweep":
            return _sweep(args)
        return _report(args)
    except UserError as err:
        print(f"orchestrator: error: {err}", file=sys.stderr)
        return err.exit_code
    except OrchestratorError as err:
        print(f"orchestrator: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("orchestrator: interrupted; finished trials are kept in results.jsonl, rerun to resume", file=sys.stderr)
        return 130


def _out_dir(path: str | None, job_name: str) -> Path:
    out = Path(path) if path else Path("reports") / job_name
    if "\x00" in str(out) or ".." in out.parts:
        raise UserError(f"--out {str(out)!r}: must not contain '..' segments")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    return out


def _sweep(args) -> int:
    from orchestrator import plan, spec

    job = spec.load(args.job)
    out = _out_dir(args.out, job.name)
    plans = plan.build(job)
    if args.dry_run:
        from orchestrator import launchers
        from orchestrator.scheduler import storage_path

        document = {
            "job": job.name,
            "out": str(out),
            "cluster": args.address or "RAY_ADDRESS if set, else an embedded local cluster",
            "storage_path": storage_path(job, out),
            "trials": [{**p.to_dict(), "ray_train": launchers.get(p.strategy).describe(p)} for p in plans],
        }
        print(json.dumps(document, indent=2))
        return 0

    from orchestrator import scheduler
    from orchestrator.progress import RichProgress

    progress = RichProgress()

    def announce(cluster, storage):
        where = "embedded local Ray cluster" if cluster.embedded else f"Ray cluster at {cluster.address}"
        progress.console.print(
            f"[bold]{job.name}[/]: {len(plans)} trial(s) on the {where} "
            f"({cluster.total.get('CPU', 0):g} CPU, {cluster.total.get('GPU', 0):g} GPU, {len(cluster.nodes)} node(s))"
        )
        progress.console.print(f"results and reports: {out.resolve()}   Ray Train storage: {storage}")

    outcome = scheduler.sweep(job, out, address=args.address, verbose=args.verbose, progress=progress, on_cluster=announce)
    console = progress.console
    if outcome.skipped:
        console.print(f"resumed: skipped {len(outcome.skipped)} trial(s) already in results.jsonl")
    for path in outcome.reports:
        console.print(f"wrote {path}")
    if outcome.failed:
        console.print(f"[red]{len(outcome.failed)} trial(s) failed[/]; see report.md and results.jsonl")
        return 1
    return 0


def _report(args) -> int:
    from orchestrator import report

    directory = Path(args.dir)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory; pass the --out directory of a sweep")
    for path in report.render(directory):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
