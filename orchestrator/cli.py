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
import math
import os
import sys
from pathlib import Path
from typing import Callable

from orchestrator import __version__
from orchestrator.errors import OrchestratorError, UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(2, f"orchestrator: error: {message} (see '{self.prog} --help')\n")


def _number(kind: type, low: float, high: float = math.inf, low_open: bool = False, what: str = "") -> Callable:
    """An argparse type: a finite ``kind`` in [low, high] (``low_open``: above low), refused with the value,
    the range and what it counts; argparse names the flag and exits 2."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}"
                                             f"{f' ({what})' if what else ''}") from None
        if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
            if kind is int:
                bound = f"a whole number from {low:g} to {high:g}" if math.isfinite(high) else f"a whole number, {low:g} or more"
            else:
                bound = f"a finite number {f'above {low:g}' if low_open else f'{low:g} or more'}"
                bound += f" and at most {high:g}" if math.isfinite(high) else ""
            raise argparse.ArgumentTypeError(f"{text!r}: must be {bound}{f' ({what})' if what else ''}")
        return value
    convert.__name__ = kind.__name__  # argparse's "invalid int value" wording is replaced by the message
    return convert


COUNT = _number(int, 1, 4096, what="workers")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="orchestrator", description="Measure how a training job scales in PyTorch and TensorFlow on Ray.")
    top.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sweep = commands.add_parser("sweep", help="run every (arm, worker count, repeat) of a job and report")
    sweep.add_argument("job", help="job spec, e.g. jobs/digits-mlp.yaml")
    sweep.add_argument("--out", help="output directory (default: reports/<job name>)")
    sweep.add_argument("--address", help="Ray cluster to attach to (default: RAY_ADDRESS, else an embedded local cluster)")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan as JSON and start nothing")
    sweep.add_argument("--verbose", action="store_true", help="show Ray's and the workers' logs")

    train = commands.add_parser("train", help="train one arm of a job at one size (after a sweep: --from-report)")
    train.add_argument("job", help="job spec, e.g. jobs/digits-mlp.yaml")
    train.add_argument("--workers", type=COUNT, help="data-parallel workers")
    train.add_argument("--arm", help="framework/strategy[/execution], e.g. torch/ddp (needed when the job has several)")
    train.add_argument("--from-report", metavar="DIR", help="the arm and count `orchestrator recommend DIR` recommends")
    train.add_argument("--out", help="output directory (default: reports/<job>-train-<arm>-w<N>)")
    train.add_argument("--address", help="Ray cluster to attach to (default: RAY_ADDRESS, else an embedded local cluster)")
    train.add_argument("--fresh", action="store_true", help="start over: set the earlier run's checkpoints aside")
    train.add_argument("--dry-run", action="store_true", help="print the plan as JSON and start nothing")
    train.add_argument("--verbose", action="store_true", help="show Ray's and the workers' logs")

    rep = commands.add_parser("report", help="re-render the reports of DIR from its results.jsonl")
    rep.add_argument("dir", help="a sweep's output directory")

    advise = commands.add_parser("recommend", help="fit the curves of DIR, recommend worker counts, update its reports")
    advise.add_argument("dir", help="a sweep's output directory")
    advise.add_argument("--threshold", type=_number(float, 0, 1, low_open=True, what="an efficiency"), default=0.8, help="lowest acceptable predicted efficiency (default 0.8)")
    advise.add_argument("--max-workers", type=COUNT, help="largest worker count to consider (default: 4x the largest measured, at least 16)")
    advise.add_argument("--emit", help="write the recommendation as Ray ScalingConfigs and Kubernetes replicas (YAML) to this file")
    priced = advise.add_argument_group("cost (per resource-hour; overrides the job's pricing: block)")
    priced.add_argument("--price", metavar="PRICES", help="e.g. cpu=0.04,gpu=2.5,tpu=1.2")
    length = priced.add_mutually_exclusive_group()
    length.add_argument("--train-steps", type=_number(int, 1, what="optimiser steps"), metavar="S", help="price training S steps (strong scaling only; default: the samples the smallest count's trials trained on)")
    length.add_argument("--epochs", type=_number(float, 0, low_open=True, what="epochs"), metavar="E", help="price training E epochs of the training set")
    length.add_argument("--to-target", action="store_true", help="price training to training.target (measured counts)")
    priced.add_argument("--deadline", metavar="TIME", help="the cheapest size that trains by then, e.g. 2h, 90m")
    priced.add_argument("--budget", type=_number(float, 0, what="money"), metavar="MONEY", help="the fastest size that costs at most this")
    whatif = advise.add_argument_group("what-if (the physical model: needs trials with measure.breakdown)")
    whatif.add_argument("--bandwidth", metavar="RATE", help="link rate between nodes to predict for, e.g. 100Gbit/s, 25GB/s")
    whatif.add_argument("--intra-bandwidth", metavar="RATE", help="link rate between workers of one node (e.g. NVLink 400GB/s)")
    whatif.add_argument("--workers-per-node", type=_number(int, 1, 4096, what="workers a node"), metavar="N", help="workers on each node (default: as measured)")
    whatif.add_argument("--measured-link", metavar="RATE", help="the link rate the sweep ran over, to carry its measured "
                        "efficiency (bus bandwidth / rate) to --bandwidth; without it --bandwidth is the bus bandwidth")

    replay = commands.add_parser("replay", help="write a job that replays DIR's measured step on accelerator-like "
                                 "workers (workload.model emulated), to sweep it at sizes this machine cannot run")
    replay.add_argument("dir", help="a sweep's output directory (trials with measure.breakdown)")
    replay.add_argument("--curve", help="which curve, e.g. torch/ddp (needed where several have a breakdown)")
    replay.add_argument("--workers", default="1,2,4,8,16", help="the replay's sweep.workers (default 1,2,4,8,16)")
    replay.add_argument("--out", required=True, help="the job file to write, e.g. replay.yaml")

    schema = commands.add_parser("schema", help="print the job files' JSON Schema (for editors' YAML language server)")
    schema.add_argument("-o", "--output", help="write to this file instead of stdout (e.g. schemas/job.schema.json)")

    share = commands.add_parser("share", help="plan a shared cluster: how many workers each swept job gets")
    share.add_argument("dirs", nargs="+", help="sweep output directories, one per job")
    share.add_argument("--cpus", type=_number(float, 0, low_open=True, what="CPUs"), required=True, help="the cluster's CPUs to share")

    k8s = commands.add_parser("k8s", help="KubeRay manifests: render them for a job, validate them offline")
    k8s_commands = k8s.add_subparsers(dest="k8s_command", required=True, parser_class=_Parser)
    render = k8s_commands.add_parser("render", help="write the KubeRay manifests that run JOB's sweep at a scale")
    render.add_argument("job", help="job spec, e.g. jobs/digits-mlp.yaml")
    render.add_argument("--workers", type=COUNT, help="Ray worker pods (TPU: a multiple of the hosts per slice)")
    render.add_argument("--from-report", metavar="DIR", help="take --workers/--max-workers from `orchestrator recommend DIR`")
    render.add_argument("--curve", help="with --from-report: which curve, e.g. torch/ddp (default: the best one)")
    render.add_argument("--sweep", action="store_true", help="with --from-report: a RayJob that sweeps the chosen arm "
                        "at the recommended size (default: one that trains it there, `orchestrator train`)")
    render.add_argument("--max-workers", type=COUNT, help="let the Ray autoscaler grow to this many worker pods")
    render.add_argument("--accelerator", default="cpu", help="cpu | gpu | tpu-v5e | tpu-v6e (default: cpu)")
    render.add_argument("--topology", help="TPU slice topology, e.g. 2x2, 4x4")
    render.add_argument("--image", help="container image (default: the project's release image)")
    render.add_argument("--in-image", action="store_true",
                        help="run the job file shipped in the image at the same path, instead of a ConfigMap copy")
    render.add_argument("-o", "--output", help="write to this file instead of stdout")
    check = k8s_commands.add_parser("validate", help="check manifests against Kubernetes and KubeRay schemas and security rules")
    check.add_argument("paths", nargs="+", help="YAML files (multi-document)")
    check.add_argument("--no-security", action="store_true", help="schemas only: skip the pod-security and secret checks")
    check.add_argument("--crd-dir", help="KubeRay CRD YAML files to validate against (default: the copy shipped in the package)")
    check.add_argument("--kubernetes-version", metavar="X.Y",
                       help="Kubernetes release whose schemas built-in kinds are checked against (default 1.35; kubernetes-validate ships 1.25 to 1.37)")
    check.add_argument("--ignore-missing-schemas", action="store_true",
                       help="report documents whose kind has no schema (Gateway API, Volcano, ...) as skipped, not invalid")
    check.add_argument("--skip", action="append", default=[], metavar="KIND[,KIND]",
                       help="kinds not to check: HTTPRoute, or gateway.networking.k8s.io/v1/HTTPRoute (repeatable)")
    for command in (sweep, rep, advise, replay, schema, share, render, check):  # whose --help an unknown argument points to
        command.set_defaults(parser=command)
    return top


def main(argv: list[str] | None = None) -> int:
    try:  # argparse exits on a bad argument (2) and after --help (0): returned, as every other exit is
        args, unknown = parser().parse_known_args(argv)
        if unknown:  # argparse would blame the top-level command; name the one the arguments were given to
            args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exited:
        return exited.code if isinstance(exited.code, int) else 2
    try:
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "train":
            return _train(args)
        if args.command == "recommend":
            return _recommend(args)
        if args.command == "share":
            return _share(args)
        if args.command == "replay":
            return _replay(args)
        if args.command == "schema":
            return _schema(args)
        if args.command == "k8s":
            return _k8s_render(args) if args.k8s_command == "render" else _k8s_validate(args)
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


def _check_output_file(flag: str, path: str | None, example: str) -> None:
    """A file the command will write (missing folders are created): refused before any work if it cannot be."""
    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{flag} {path}: is a directory; pass a file path, e.g. {target / example}")
    blocker = next((p for p in target.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UserError(f"{flag} {path}: {blocker} is a file, not a folder; pass a path in a folder")


def _sweep_time(out_dir) -> str | None:
    """The report's sentence on where the sweep's time went (every trial of the results, resumed ones too)."""
    try:
        spent = json.loads((Path(out_dir) / "report.json").read_text()).get("sweep_time")
    except (OSError, ValueError):
        return None
    return spent["sentence"] if spent else None


def _sweep(args) -> int:
    from orchestrator.job import plan, spec
    from orchestrator.running.output import Output
    from orchestrator.running.scheduler import storage_path

    job = spec.load(args.job)
    _check_address(args.address)
    out = Output(args.out or str(Path("reports") / job.name))
    plans = plan.build(job)
    from orchestrator.running import scheduler

    if args.dry_run:
        from orchestrator.running import launchers

        document = {
            "job": job.name,
            "out": out.location,
            "cluster": args.address or os.environ.get("RAY_ADDRESS") or "an embedded local Ray cluster (no RAY_ADDRESS)",
            "storage_path": storage_path(job, out),
            "notes": scheduler.unit_notes(plans),
            "launchers": scheduler.launcher_notes(plans),
            "trials": [{**p.to_dict(), "launcher": {"name": p.launcher, "why": p.launcher_reason,
                                                    "worker_processes": launchers.worker_processes(p),
                                                    **launchers.for_plan(p).describe(p)}} for p in plans],
        }
        print(json.dumps(document, indent=2))
        return 0

    from orchestrator.running.progress import RichProgress

    progress = RichProgress()

    def announce(cluster, storage):
        where = "embedded local Ray cluster" if cluster.embedded else f"Ray cluster at {cluster.address}"
        progress.console.print(
            f"[bold]{job.name}[/]: {len(plans)} trial(s) on the {where} "
            f"({cluster.total.get('CPU', 0):g} CPU, {cluster.total.get('GPU', 0):g} GPU, {len(cluster.nodes)} node(s))"
        )
        progress.console.print(f"results and reports: {out.location}   Ray Train storage: {storage}")
        for note in scheduler.unit_notes(plans):
            progress.console.print(f"note: {note}", highlight=False)
        for note in scheduler.launcher_notes(plans):
            progress.console.print(note, highlight=False)

    outcome = scheduler.sweep(job, out, address=args.address, verbose=args.verbose, progress=progress, on_cluster=announce)
    console = progress.console
    if outcome.skipped:
        console.print(f"resumed: skipped {len(outcome.skipped)} trial(s) already in results.jsonl")
    for decision in outcome.decisions:
        console.print(f"adaptive: {decision}")
    if job.sweep.adaptive:
        measured = len(outcome.ran) + len(outcome.skipped)
        console.print(f"adaptive: {measured} of {len(plans)} planned trials measured, {len(plans) - measured} saved")
    spent = _sweep_time(outcome.out_dir)
    if spent:
        console.print(spent, highlight=False)
    for path in outcome.reports:
        console.print(f"wrote {out.location}/{path.name}")
    if outcome.failed:
        console.print(f"[red]{len(outcome.failed)} trial(s) failed[/]; see report.md and results.jsonl")
        return 1
    return 0


def _train(args) -> int:
    from orchestrator.job import plan, spec
    from orchestrator.running import launchers, training

    job = spec.load(args.job)
    _check_address(args.address)
    arm, workers = training.choose(job, args.arm, args.workers, args.from_report)
    out = args.out or training.default_out(job, arm, workers)
    if args.dry_run:
        one = plan.training_plan(job, arm, workers)
        print(json.dumps({"job": job.name, "out": out, "run_name": one.run_name,
                          "cluster": args.address or os.environ.get("RAY_ADDRESS") or "an embedded local Ray cluster",
                          "training": {**one.to_dict(), "launcher": launchers.for_plan(one).describe(one)}}, indent=2))
        return 0
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    shown = {"line": None}

    def watch(workers_so_far):
        line = training.progress_line(workers_so_far, job.training.steps)
        if line and line != shown["line"]:
            shown["line"] = line
            console.print(f"  {line}")

    record = training.run(job, arm, workers, out, address=args.address, verbose=args.verbose, fresh=args.fresh,
                          say=console.print, watch=watch)
    if record.get("status") != "ok":
        console.print(f"[red]training failed[/]: {record.get('error')}; what it wrote is in {out}")
        return 1
    summary = [f"{record.get('final_step')} steps"]
    if record.get("samples_per_sec"):
        summary.append(f"{record['samples_per_sec']:,.0f} samples/s")
    if record.get("test_accuracy") is not None:
        summary.append(f"test accuracy {record['test_accuracy']:.3f}")
    if record.get("failures"):
        summary.append(f"{record['failures']} restart(s) from a checkpoint")
    target = record.get("target")
    if target:
        summary.append(f"{target['metric']} {target['value']:g} reached at step {target['steps']} in {target['seconds']:.1f} s"
                       if target.get("reached") else f"{target['metric']} {target['value']:g} not reached")
    console.print(f"trained {arm} at {workers} worker(s): " + ", ".join(summary))
    console.print(f"wrote {out}/{training.RECORD}; TensorBoard: tensorboard --logdir {out}/tensorboard")
    return 0 if not target or target.get("reached") else 1


def _schema(args) -> int:
    from orchestrator.job import schema
    from orchestrator.measuring.results import write_atomic

    if args.output:
        write_atomic(args.output, schema.text())
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(schema.text())
    return 0


def _report(args) -> int:
    from orchestrator import report
    from orchestrator.running.output import Output, is_uri

    if not is_uri(args.dir) and not Path(args.dir).is_dir():
        raise UserError(f"{args.dir}: no such directory; pass the --out directory of a sweep")
    out = Output(args.dir).open()
    from orchestrator.measuring import results

    try:
        torn = results.scan(out.local).torn_note(f"{out.location}/{results.FILENAME}")
    except ValueError as err:  # a line that is JSON but no trial record: edited by hand
        raise UserError(str(err)) from None
    if torn:
        print(f"orchestrator: note: {torn}", file=sys.stderr)
    for path in report.render(out.local):
        print(f"wrote {out.location}/{path.name}")
    out.sync()
    return 0


def _k8s_render(args) -> int:
    from orchestrator.job import spec
    from orchestrator.deploying.kube import manifests

    job = spec.load(args.job)
    _check_output_file("--output", args.output, "manifests.yaml")
    workers, max_workers = args.workers, args.max_workers
    job_text = None if args.in_image else Path(args.job).read_text(encoding="utf-8")
    out_name, train = None, None
    if args.sweep and not args.from_report:
        raise UserError("k8s render --sweep goes with --from-report (without it the RayJob sweeps the job as it is)")
    if args.from_report:
        from orchestrator.job import plan
        from orchestrator.modelling.recommend import from_report

        if args.workers is not None or args.in_image:
            raise UserError("k8s render --from-report takes the worker count from the report and renders the job "
                            "at it in a ConfigMap: drop --workers and --in-image, or drop --from-report")
        chosen = from_report(args.from_report, args.curve)
        # The rendered cluster runs what was recommended: the chosen arm at the recommended count, sized in Ray
        # workers (pods) for it (mirrored: one pod holding every replica; TPU: one pod per host).
        job = spec.at_scale(job, chosen.arm, chosen.workers)
        strategy = job.arms[0].strategy
        workers = plan.ray_workers_for(strategy, chosen.workers)
        max_workers = max(workers, max_workers or plan.ray_workers_for(strategy, chosen.max_workers))
        job_text = spec.dump(job, f"{chosen.arm} at the {chosen.workers} worker(s) `orchestrator recommend "
                                  f"{args.from_report}` recommends (from {args.job})")
        out_name = f"{job.name}-{chosen.arm.replace('/', '-')}-w{chosen.workers}"
        if not args.sweep:  # the step from the answer to the run: train the chosen arm at the chosen size
            train, out_name = (chosen.arm, chosen.workers), f"{job.name}-train-{chosen.arm.replace('/', '-')}-w{chosen.workers}"
    if workers is None:
        raise UserError("k8s render: pass --workers N, or --from-report DIR")
    scale = manifests.worker_scale(job, workers, args.accelerator, args.topology, max_workers)
    docs = manifests.build(
        job, scale, image=args.image or manifests.DEFAULT_IMAGE,
        job_file=args.job if args.in_image else None, job_text=job_text, out_name=out_name, train=train,
    )
    text = manifests.to_yaml(docs)
    if args.output:
        from orchestrator.measuring.results import write_atomic

        write_atomic(args.output, text)
        print(f"wrote {args.output}: {len(docs)} resources, {scale.replicas} x {scale.num_of_hosts} worker pod(s)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _recommend(args) -> int:
    from orchestrator.modelling import recommend

    if not Path(args.dir).is_dir():
        raise UserError(f"{args.dir}: no such directory; pass the --out directory of a sweep")
    if not 0 < args.threshold <= 1:
        raise UserError(f"--threshold {args.threshold}: must be in (0, 1]")
    if args.max_workers is not None and not 1 <= args.max_workers <= 4096:
        raise UserError(f"--max-workers {args.max_workers}: must be between 1 and 4096")
    _check_output_file("--emit", args.emit, "recommendation.yaml")
    layout = _layout(args)
    for line in recommend.run(args.dir, args.threshold, args.max_workers, args.emit, layout, _pricing(args)):
        print(line)
    return 0


def _pricing(args) -> dict | None:
    """The cost question from recommend's flags, validated; None where none is asked."""
    from orchestrator.modelling import cost

    asked = any(v is not None and v is not False for v in (args.price, args.train_steps, args.epochs, args.deadline,
                                                            args.budget)) or args.to_target
    if not asked:
        return None
    if args.train_steps is not None and args.train_steps < 1:
        raise UserError(f"--train-steps {args.train_steps}: must be 1 or more")
    if args.epochs is not None and args.epochs <= 0:
        raise UserError(f"--epochs {args.epochs:g}: must be above 0")
    if args.budget is not None and args.budget < 0:
        raise UserError(f"--budget {args.budget:g}: must be 0 or more")
    length = ({"steps": args.train_steps} if args.train_steps else {"epochs": args.epochs} if args.epochs
              else {"target": True} if args.to_target else None)
    return {"prices": cost.parse(args.price) if args.price else None, "length": length,
            "deadline_s": cost.duration(args.deadline) if args.deadline else None, "budget": args.budget}


def _layout(args) -> dict | None:
    """The what-if layout from recommend's flags, validated; None where none is asked."""
    from orchestrator.job import rates

    if args.workers_per_node is not None and not 1 <= args.workers_per_node <= 4096:
        raise UserError(f"--workers-per-node {args.workers_per_node}: must be between 1 and 4096")
    layout = {"workers_per_node": args.workers_per_node,
              "inter_node_bps": rates.parse(args.bandwidth, "--bandwidth") if args.bandwidth else None,
              "intra_node_bps": rates.parse(args.intra_bandwidth, "--intra-bandwidth") if args.intra_bandwidth else None,
              "measured_link_bps": rates.parse(args.measured_link, "--measured-link") if args.measured_link else None}
    if layout["measured_link_bps"] and not layout["inter_node_bps"]:
        raise UserError("--measured-link only carries the measured efficiency of the link between nodes to another "
                        "rate: pass --bandwidth too")
    return layout if any(v is not None for v in layout.values()) else None


def _replay(args) -> int:
    import yaml

    from orchestrator.job import spec
    from orchestrator.measuring import results
    from orchestrator.running import replay
    from orchestrator.measuring.results import write_atomic

    if not Path(args.dir).is_dir():
        raise UserError(f"{args.dir}: no such directory; pass the --out directory of a sweep")
    try:
        workers = sorted({int(w) for w in args.workers.split(",") if w.strip()})
    except ValueError:
        raise UserError(f"--workers {args.workers!r}: give worker counts separated by commas, e.g. 1,2,4,8,16") from None
    if not workers or not all(1 <= w <= 4096 for w in workers):
        raise UserError(f"--workers {args.workers!r}: counts must be between 1 and 4096")
    _check_output_file("--out", args.out, "replay.yaml")
    try:
        found = results.load(Path(args.dir))
    except ValueError as err:
        raise UserError(str(err)) from None
    name = f"{(found.records[0].job if found.records else 'job')}-replay"
    job, source = replay.replay_job(found.ok, args.curve, workers, name)
    spec.parse(job, args.out)  # what is written is a job the sweep accepts
    header = (f"# {source['curve']} of {args.dir} at {source['workers']} worker(s) ({source['trials']} trial(s)), "
              "replayed on accelerator-like workers under torch DDP: compute as device time, the same gradient "
              "bytes (in layers of equal size: DDP cuts its own buckets of them).\n")
    write_atomic(args.out, header + yaml.safe_dump(job, sort_keys=False))
    print(f"wrote {args.out}: {job['workload']['params']}", file=sys.stderr)
    return 0


def _share(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from orchestrator.modelling import recommend

    if not 0 < args.cpus <= 1_000_000:
        raise UserError(f"--cpus {args.cpus}: must be a positive number of CPUs")
    for directory in args.dirs:
        if not Path(directory).is_dir():
            raise UserError(f"{directory}: no such directory; pass the --out directories of sweeps")
    plan = recommend.share(args.dirs, args.cpus)
    table = Table(title=f"Sharing {args.cpus:g} CPUs: most total throughput relative to each job's 1 worker")
    for column in ("job", "runs", "CPUs/worker", "workers", "CPUs", "throughput vs 1 worker", "efficiency"):
        table.add_column(column, justify="left" if column in ("job", "runs") else "right")
    for row in plan:
        table.add_row(row["job"], row["curve"], f"{row['cpus_per_worker']:g}", str(row["workers"]), f"{row['cpus']:g}",
                      f"{row['relative_throughput']:.2f}x", f"{100 * row['efficiency']:.0f}%")
    total = sum(row["relative_throughput"] for row in plan)
    table.add_row("total", "", "", str(sum(r["workers"] for r in plan)), f"{sum(r['cpus'] for r in plan):g}", f"{total:.2f}", "")
    Console(soft_wrap=True).print(table)
    return 0


def _k8s_validate(args) -> int:
    from orchestrator.deploying.kube import validate

    version = validate.kubernetes_version(args.kubernetes_version)
    skip = frozenset(kind.strip() for value in args.skip for kind in value.split(",") if kind.strip())
    options = validate.Options(security=not args.no_security, kubernetes_version=version,
                               ignore_missing_schemas=args.ignore_missing_schemas, skip_kinds=skip)
    summary = validate.validate_paths(args.paths, crd_dir=args.crd_dir, options=options)
    for problem in summary.problems:
        print(problem)
    for skipped in summary.skipped:
        print(skipped, file=sys.stderr)
    if summary.problems:
        print(f"{len(summary.problems)} problem(s); {summary.line(version)}", file=sys.stderr)
        return 1
    shown = ", ".join(args.paths) if len(args.paths) <= 3 else f"{len(args.paths)} files"
    print(f"ok: {shown}: {summary.line(version)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
