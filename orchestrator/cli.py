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
import os
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
    except BrokenPipeError:  # e.g. `orchestrator sweep --dry-run ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("orchestrator: interrupted; finished trials are kept in results.jsonl, rerun to resume", file=sys.stderr)
        return 130


def _check_address(address: str | None) -> None:
    if address and address.startswith(("http://", "https://")):
        raise UserError(
            f"--address {address}: that is the dashboard (Jobs API) address; run the sweep through "
            "'ray job submit --address ... -- orchestrator sweep ...', or pass the cluster's GCS address (HOST:6379)"
        )


def _sweep(args) -> int:
    from orchestrator import plan, spec

    from orchestrator.output import Output
    from orchestrator.scheduler import storage_path

    job = spec.load(args.job)
    _check_address(args.address)
    out = Output(args.out or str(Path("reports") / job.name))
    plans = plan.build(job)
    if args.dry_run:
        from orchestrator import launchers

        document = {
            "job": job.name,
            "out": out.location,
            "cluster": args.address or os.environ.get("RAY_ADDRESS") or "an embedded local Ray cluster (no RAY_ADDRESS)",
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
        progress.console.print(f"results and reports: {out.location}   Ray Train storage: {storage}")

    outcome = scheduler.sweep(job, out, address=args.address, verbose=args.verbose, progress=progress, on_cluster=announce)
    console = progress.console
    if outcome.skipped:
        console.print(f"resumed: skipped {len(outcome.skipped)} trial(s) already in results.jsonl")
    for path in outcome.reports:
        console.print(f"wrote {out.location}/{path.name}")
    if outcome.failed:
        console.print(f"[red]{len(outcome.failed)} trial(s) failed[/]; see report.md and results.jsonl")
        return 1
    return 0


def _report(args) -> int:
    from orchestrator import report
    from orchestrator.output import Output, is_uri

    if not is_uri(args.dir) and not Path(args.dir).is_dir():
        raise UserError(f"{args.dir}: no such directory; pass the --out directory of a sweep")
    out = Output(args.dir).open()
    for path in report.render(out.local):
        print(f"wrote {out.location}/{path.name}")
    out.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
