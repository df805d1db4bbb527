"""Orchestrator overhead against bare launchers, time to first step, distortion of efficiency, sweep cost.

    .venv/bin/python bench/overhead.py [--repeats 5] [--no-sweep-cost] [--arms A,B --out NAME]

One command, every arm side by side. For each repeat, in turn (interleaved, so a drift of the machine lands on
every arm alike):

  2 workers   torch    the orchestrator, launcher: ray_train (TorchTrainer, DDP) and launcher: actors
                       vs  bare `torchrun --nproc_per_node 2`
              tf       the orchestrator, ray_train (DataParallelTrainer + TF_CONFIG, MWMS) and actors
                       vs  two processes, TF_CONFIG set by hand
              horovod  the orchestrator (horovod.ray RayExecutor)  vs  bare `horovodrun -np 2 --gloo`
  1 worker    torch    the orchestrator, both launchers  vs  bare `torchrun --nproc_per_node 1`
              (with the 2-worker arms: scaling efficiency through each, and their ratio, the distortion)
  attached    torch    launcher: actors at 2 workers on a Ray cluster already running (the benchmark's own
              tf       `ray start --head`, started before and stopped after, neither timed), as `ray job
                       submit` and KubeRay run it

Then, once, the default sweep (`make demo`'s job, jobs/digits-mlp.yaml) through the CLI with each launcher:
its wall time split into training and everything else.

Every arm runs the same built-in workload function (orchestrator/workloads/torch_train.py, tf_train.py), the
same model, data, per-worker batch and steps, one intra-op thread per worker (OMP/MKL/TF threads = 1
everywhere). Measured in every arm:
  step time          the workload's own per-step timing after the same warm-up (rank 0);
  time to first step process start (the CLI, torchrun, horovodrun, the first TF process) to the moment the
                     slowest worker finished step 1 (wall clock, stamped by the workload);
  wall time          process start to exit.
The orchestrator arms also split time to first step into its parts (the profile).
Writes bench/results/overhead.{json,md}. Not a test: timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from orchestrator.measuring import results  # noqa: E402

PY = sys.executable
BIN = Path(PY).parent
STEPS, WARMUP, BATCH, REPORT = 400, 50, 64, 50
CONFIG = {
    "model": "mlp", "params": {"hidden": [512, 512]}, "dataset": "synthetic", "num_samples": 8192, "image_size": 8,
    "per_worker_batch": BATCH, "steps": STEPS, "report_every": REPORT, "checkpoint_every": 0, "learning_rate": 0.05,
    "momentum": 0.9, "seed": 0, "threads": 1, "replicas": 1, "collective_timeout_s": 600, "execution": None,
    "export": None,
}
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
           "TF_NUM_INTEROP_THREADS": "1", "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
STRATEGY = {"torch": "ddp", "tf": "multi_worker_mirrored", "horovod": "horovod"}

# Each rank prints its reports to its own file (ranks sharing one pipe can interleave their lines).
PER_RANK_PRINTS = """
import builtins, functools, os
_rank = os.environ.get("RANK", os.environ.get("HOROVOD_RANK"))
_out = open(os.path.join(os.environ["BENCH_OUT"], f"rank{_rank}.txt"), "a")
builtins.print = functools.partial(builtins.print, file=_out, flush=True)
"""
BARE_TORCH = PER_RANK_PRINTS + """
import json, sys
import torch.distributed as dist
dist.init_process_group("gloo")
from orchestrator.workloads import torch_train
torch_train.train_loop(json.loads(sys.argv[1]))
dist.destroy_process_group()
"""
BARE_TF = """
import json, sys
from orchestrator.workloads import tf_train
tf_train.train_loop(json.loads(sys.argv[1]))
"""
BARE_HOROVOD = PER_RANK_PRINTS + """
import json, sys
from orchestrator.workloads import torch_train
torch_train.train_loop(json.loads(sys.argv[1]))  # strategy horovod: hvd.init() and DistributedOptimizer inside
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _script(text: str) -> str:
    path = Path(tempfile.mkdtemp()) / "bare.py"
    path.write_text(text)
    return str(path)


def _env(**extra) -> dict:
    return {**os.environ, **THREADS, "PYTHONPATH": str(ROOT), **extra}


def from_prints(lines: list[str], workers: int) -> dict:
    """Step time, throughput and first-step stamp from the workload's printed reports (one worker's)."""
    reports = [json.loads(line) for line in lines if line.startswith("{")]
    measured = [r for r in reports if r["step"] > WARMUP]
    seconds = sum(r["samples"] / r["samples_per_sec"] for r in measured)
    steps = sum(r["samples"] / BATCH for r in measured)
    first = next(r["first_step_wall"] for r in reports if "first_step_wall" in r)
    return {"step_time_s": seconds / steps, "samples_per_sec": workers * BATCH * steps / seconds, "first_step_wall": first}


def _by_rank(directory: str) -> dict[str, list[str]]:
    """Each rank's printed lines, from the files PER_RANK_PRINTS writes."""
    return {path.stem.removeprefix("rank"): path.read_text().splitlines() for path in Path(directory).glob("rank*.txt")}


def _stamps(by_rank: dict[str, list[str]]) -> list[float]:
    return [json.loads(line)["first_step_wall"] for lines in by_rank.values() for line in lines if "first_step_wall" in line]


def _finish(started_wall: float, started: float, measured: dict, extra_first: list[float] = ()) -> dict:
    first = max([measured.pop("first_step_wall"), *extra_first])
    return {**measured, "time_to_first_step_s": first - started_wall, "wall_s": time.perf_counter() - started}


def bare_torch(workers: int) -> dict:
    started_wall, started = time.time(), time.perf_counter()
    prints = tempfile.mkdtemp()
    subprocess.run([str(BIN / "torchrun"), "--nproc_per_node", str(workers), "--master_port", str(free_port()),
                    _script(BARE_TORCH), json.dumps({**CONFIG, "strategy": "ddp"})],
                   env=_env(BENCH_OUT=prints), capture_output=True, text=True, check=True)
    by_rank = _by_rank(prints)
    stamps = _stamps(by_rank)
    return _finish(started_wall, started, from_prints(by_rank["0"], workers), stamps)


def bare_tf() -> dict:
    started_wall, started = time.time(), time.perf_counter()
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen([PY, _script(BARE_TF), json.dumps({**CONFIG, "strategy": "multi_worker_mirrored"})],
                                      env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True))
    outputs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("bare TF worker failed")
    stamps = _stamps({str(i): out.splitlines() for i, out in enumerate(outputs)})
    return _finish(started_wall, started, from_prints(outputs[0].splitlines(), 2), stamps)


def bare_horovod() -> dict:
    started_wall, started = time.time(), time.perf_counter()
    prints = tempfile.mkdtemp()
    subprocess.run([str(BIN / "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo", PY,
                    _script(BARE_HOROVOD), json.dumps({**CONFIG, "strategy": "horovod"})],
                   env=_env(BENCH_OUT=prints), capture_output=True, text=True, check=True)
    by_rank = _by_rank(prints)
    stamps = _stamps(by_rank)
    return _finish(started_wall, started, from_prints(by_rank["0"], 2), stamps)


def orchestrated(framework: str, workers: int, launcher: str = "ray_train", address: str | None = None) -> dict:
    job = {
        "name": f"overhead-{framework}-{workers}",
        "arms": [{"framework": "tensorflow" if framework == "tf" else "torch", "strategy": STRATEGY[framework]}],
        "workload": {"model": "mlp", "params": CONFIG["params"]},
        "dataset": {"name": "synthetic", "num_samples": CONFIG["num_samples"]}, "batch": {"per_worker": BATCH},
        "training": {"steps": STEPS, "warmup_steps": WARMUP, "report_every": REPORT},
        "sweep": {"workers": [workers]}, "resources": {"cpus_per_worker": 1, "threads_per_worker": 1},
        "deploy": {"export": False},  # the bare arms export nothing either
        "launcher": launcher,
    }
    work = Path(tempfile.mkdtemp())
    (work / "job.yaml").write_text(json.dumps(job))
    attach = ["--address", address] if address else []
    started_wall, started = time.time(), time.perf_counter()
    subprocess.run([str(BIN / "orchestrator"), "sweep", str(work / "job.yaml"), "--out", str(work / "out"), *attach],
                   cwd=ROOT, env=_env(RAY_AUTH_MODE="token") if address else _env(), capture_output=True, text=True,
                   check=True)
    wall = time.perf_counter() - started
    (trial,) = results.load(work / "out").records
    record = trial.data
    rank0 = next(w for w in record["per_worker"] if w["rank"] == 0)
    first_done = record["launched_at"] + record["time_to_first_step_s"]
    return {
        "step_time_s": rank0["step_time_mean_s"], "samples_per_sec": record["samples_per_sec"],
        "time_to_first_step_s": first_done - started_wall, "wall_s": wall,
        # The profile of the time to first step:
        "profile": {
            "cli_and_ray_start_s": record["started_at"] - started_wall,   # imports, ray.init, plan, checks
            "trainer_build_s": record["launched_at"] - record["started_at"],  # driver-side imports, trainer
            "worker_group_start_s": record["startup_s"],  # controller + placement + worker processes + backend
            "worker_setup_s": record["time_to_first_step_s"] - record["startup_s"] - record["first_step_s"],
            "first_step_s": record["first_step_s"],
        },
        "trial_wall_s": record["wall_time_s"],
    }


def attached(framework: str, workers: int) -> dict:
    """launcher: actors on a Ray cluster that is already up: only the orchestrator's own start is timed.

    The cluster is this function's own (`ray start --head --block` in its own process group and temp dir),
    stopped through that process, then its group: another Ray on the machine is left alone (`ray stop` would
    end it)."""
    port, temp = free_port(), Path(tempfile.mkdtemp(prefix="bench-ray-", dir="/tmp"))  # short: unix sockets
    log = temp / "ray-start.log"
    with open(log, "w") as out:
        head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                                 "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                                env=_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start --head did not come up: {log.read_text()[-1500:]}")
            time.sleep(0.5)
        return orchestrated(framework, workers, "actors", address=f"127.0.0.1:{port}")
    finally:
        # SIGTERM to `ray start --block` alone stops its processes (2 s); to its whole group, ~30 s.
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(temp, ignore_errors=True)


def sweep_cost(launcher: str | None) -> dict:
    """The default sweep through the CLI, once: where its wall time goes (launcher None: the job as it is)."""
    work = Path(tempfile.mkdtemp())
    job = work / "digits-mlp.yaml"
    job.write_text((ROOT / "jobs/digits-mlp.yaml").read_text() + (f"\nlauncher: {launcher}\n" if launcher else ""))
    out = work / "demo"
    started_wall, started = time.time(), time.perf_counter()
    subprocess.run([str(BIN / "orchestrator"), "sweep", str(job), "--out", str(out)], cwd=ROOT,
                   env={**os.environ}, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ok = [r for r in records if r["status"] == "ok"]
    # The sweep's own account of its time (orchestrator.modelling.analysis.sweep_time, from the records); what no record
    # holds is the CLI's start before the sweep and the reports and Ray's shutdown after its last trial.
    spent = json.loads((out / "report.json").read_text())["sweep_time"]
    parts = {
        "training_s": spent["training_s"],
        "to_step_1_fresh_processes_s": spent["fresh_to_first_step_s"],
        "to_step_1_reused_processes_s": spent["reused_to_first_step_s"],
        "step_breakdown_s": spent["breakdown_s"],
        "exports_s": spent["export_s"],
        "after_training_rest_s": spent["after_training_s"] - spent["breakdown_s"] - spent["export_s"],
        "ray_start_and_between_trials_s": spent["orchestrator_s"],
        "cli_start_reports_and_shutdown_s": wall - spent["total_s"],
    }
    return {"job": "jobs/digits-mlp.yaml", "launcher": launcher, "trials": len(records), "failed": len(records) - len(ok), "wall_s": wall,
            "training_fraction": spent["training_s"] / wall, "parts": parts, "sentence": spent["sentence"],
            "started_wall": started_wall, "records": records}


ARMS = {
    "torch/ray_train": lambda: orchestrated("torch", 2),
    "torch/actors": lambda: orchestrated("torch", 2, "actors"),
    "torch/torchrun": lambda: bare_torch(2),
    "tf/ray_train": lambda: orchestrated("tf", 2),
    "tf/actors": lambda: orchestrated("tf", 2, "actors"),
    "tf/TF_CONFIG": bare_tf,
    "horovod/orchestrator": lambda: orchestrated("horovod", 2),
    "horovod/horovodrun": bare_horovod,
    "torch/ray_train@1": lambda: orchestrated("torch", 1),
    "torch/actors@1": lambda: orchestrated("torch", 1, "actors"),
    "torch/torchrun@1": lambda: bare_torch(1),
    "torch/actors attached": lambda: attached("torch", 2),
    "tf/actors attached": lambda: attached("tf", 2),
}
# (orchestrator arm, bare arm) for each ratio.
PAIRS = {"torch ray_train": ("torch/ray_train", "torch/torchrun"), "torch actors": ("torch/actors", "torch/torchrun"),
         "torch actors attached": ("torch/actors attached", "torch/torchrun"),
         "tf ray_train": ("tf/ray_train", "tf/TF_CONFIG"), "tf actors": ("tf/actors", "tf/TF_CONFIG"),
         "tf actors attached": ("tf/actors attached", "tf/TF_CONFIG"),
         "horovod": ("horovod/orchestrator", "horovod/horovodrun")}
# Scaling efficiency at 2 workers through each launcher, against torchrun's (the distortion).
EFFICIENCY = {"ray_train": ("torch/ray_train", "torch/ray_train@1"), "actors": ("torch/actors", "torch/actors@1"),
              "torchrun": ("torch/torchrun", "torch/torchrun@1")}


def machine() -> dict:
    from orchestrator.running.scheduler import versions

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    memory = None
    if Path("/proc/meminfo").exists():
        memory = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    return {"python": platform.python_version(), "machine": platform.machine(), "cpu": model,
            "cpus": os.cpu_count(), "memory_gib": memory, "os": platform.platform(),
            **versions("ray", "torch", "tensorflow", "horovod")}


def interval(estimate, repeats: int, resamples: int = 2000, seed: int = 0) -> list[float]:
    """A 90% bootstrap interval of ``estimate(indices)``, a statistic of the repeats with those indices.

    Whole repeats are resampled, every arm's run of a repeat together (they ran minutes apart, so a drift of
    the machine moves them alike): with 5 repeats the interval is coarse, but it says whether the noise of
    this machine leaves a ratio on one side of its goal."""
    rng = random.Random(seed)
    values = sorted(estimate([rng.randrange(repeats) for _ in range(repeats)]) for _ in range(resamples))
    return [values[int(0.05 * resamples)], values[int(0.95 * resamples) - 1]]


def verdict(low: float, high: float, goal: float, at_most: bool) -> str:
    """✓ when the whole interval meets the goal, ✗ when none of it does, ? when the noise cannot tell."""
    if at_most:
        return "✓" if high <= goal else "✗" if low > goal else "?"
    return "✓" if low >= goal else "✗" if high < goal else "?"


def summarize(runs: dict, repeats: int, cost: list | None, command: str, machine_info: dict | None = None,
              date: str | None = None) -> dict:
    def median(name, key, indices=None):
        chosen = runs[name] if indices is None else [runs[name][i] for i in indices]
        return statistics.median(r[key] for r in chosen)

    def ratio(orch, bare, key):
        return lambda indices=None: median(orch, key, indices) / median(bare, key, indices)

    def efficiency_ratio(name):
        def eff(arms, indices):
            two, one = arms
            return median(two, "samples_per_sec", indices) / (2 * median(one, "samples_per_sec", indices))
        return lambda indices=None: eff(EFFICIENCY[name], indices) / eff(EFFICIENCY["torchrun"], indices)

    ratios, intervals = {}, {}
    for pair, (orch, bare) in PAIRS.items():
        if runs.get(orch) and runs.get(bare):
            keys = ("step_time_s", "time_to_first_step_s", "wall_s")
            ratios[pair] = {key.removesuffix("_s"): ratio(orch, bare, key)() for key in keys}
            intervals[pair] = {key.removesuffix("_s"): interval(ratio(orch, bare, key), repeats) for key in keys}
    measured = {name for name, (two, one) in EFFICIENCY.items() if runs.get(two) and runs.get(one)}
    efficiency = {name: median(two, "samples_per_sec") / (2 * median(one, "samples_per_sec"))
                  for name, (two, one) in EFFICIENCY.items() if name in measured}

    def per_repeat(name: str) -> list[float]:
        # Per repeat too: the arms of one repeat ran minutes apart, a spread over repeats shows the noise.
        def eff(arms, i):
            return runs[arms[0]][i]["samples_per_sec"] / (2 * runs[arms[1]][i]["samples_per_sec"])
        return [eff(EFFICIENCY[name], i) / eff(EFFICIENCY["torchrun"], i) for i in range(repeats)]

    distortion = {name: {"ratio": efficiency[name] / efficiency["torchrun"], "per_repeat": per_repeat(name),
                         "interval_90": interval(efficiency_ratio(name), repeats)}
                  for name in ("ray_train", "actors") if {name, "torchrun"} <= measured}
    profile = {name: {k: statistics.median(r["profile"][k] for r in runs[name]) for k in runs[name][0]["profile"]}
               for name in runs if runs[name] and "profile" in runs[name][0]}
    return {
        "command": command,
        "date": date or time.strftime("%Y-%m-%d"),
        "machine": machine_info or machine(),
        "workload": {**CONFIG, "steps": STEPS, "warmup_steps": WARMUP},
        "repeats": repeats,
        "goals": {"step_time_ratio_max": 1.02, "time_to_first_step_ratio_max": 1.5, "distortion_min": 0.98},
        "ratios": ratios,
        "ratio_intervals_90": intervals,
        "efficiency_at_2": efficiency,
        "distortion": distortion,
        "profile_time_to_first_step": profile,
        "sweep_cost": cost or [],
        "medians": {name: {k: statistics.median(r[k] for r in rs) for k in ("step_time_s", "samples_per_sec",
                                                                            "time_to_first_step_s", "wall_s")}
                    for name, rs in runs.items()},
        "runs": runs,
    }


def markdown(summary: dict) -> str:
    m, goals = summary["machine"], summary["goals"]
    lines = ["# Orchestrator overhead, time to first step, distortion, sweep cost", "",
             f"`{summary['command']}` ({summary['date']}): {summary['repeats']} interleaved repeats of every arm; medians, and for each "
             "ratio a 90% bootstrap interval over the repeats: ✓ the whole interval meets the goal, ✗ none of it "
             "does, ? this machine's noise cannot tell.", "",
             f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['os']}; Python {m['python']}, "
             f"Ray {m['ray']}, torch {m['torch']}, TensorFlow {m['tensorflow']}, Horovod {m['horovod']}.", "",
             f"Workload: MLP 512x512 on synthetic 8x8 images, batch {BATCH} per worker, {STEPS} steps ({WARMUP} "
             "warm-up), 1 thread per worker, the same function in every arm.", "",
             "| arm | step time | samples/s | time to first step | wall time |", "|---|---:|---:|---:|---:|"]
    for name, med in summary["medians"].items():
        lines.append(f"| {name} | {1000 * med['step_time_s']:.2f} ms | {med['samples_per_sec']:,.0f} "
                     f"| {med['time_to_first_step_s']:.1f} s | {med['wall_s']:.1f} s |")
    goal = {"step_time": goals["step_time_ratio_max"], "time_to_first_step": goals["time_to_first_step_ratio_max"]}

    def cell(pair: str, key: str) -> str:
        value, (low, high) = summary["ratios"][pair][key], summary["ratio_intervals_90"][pair][key]
        # Under 3 repeats the interval is no measure of the noise: no verdict.
        mark = f" {verdict(low, high, goal[key], at_most=True)}" if key in goal and summary["repeats"] >= 3 else ""
        return f"{value:.2f} ({low:.2f}–{high:.2f}){mark}"

    lines += ["", f"| orchestrator / bare | step time (goal ≤ {goal['step_time']}) | time to first step "
              f"(goal ≤ {goal['time_to_first_step']}) | wall time |", "|---|---:|---:|---:|"]
    for pair in summary["ratios"]:
        orch, bare = PAIRS[pair]
        lines.append(f"| {orch} vs {bare} | {cell(pair, 'step_time')} | {cell(pair, 'time_to_first_step')} | "
                     f"{cell(pair, 'wall')} |")
    e, d = summary["efficiency_at_2"], summary["distortion"]
    if d:
        lines += ["", f"Scaling efficiency at 2 workers (torch DDP): through torchrun {e['torchrun']:.3f}; "
                  + "; ".join(f"launcher {name} {e[name]:.3f}, distortion {d[name]['ratio']:.3f} "
                              f"({d[name]['interval_90'][0]:.2f}–{d[name]['interval_90'][1]:.2f}) "
                              f"{verdict(*d[name]['interval_90'], goals['distortion_min'], at_most=False)} "
                              f"(goal ≥ {goals['distortion_min']}; per repeat "
                              f"{', '.join(f'{v:.2f}' for v in d[name]['per_repeat'])})" for name in d) + "."]
    lines += ["",
              "Time to first step through the orchestrator, where it goes (medians, seconds):", "",
              "| arm | CLI + Ray start | trainer build | worker start | worker setup | first step |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, p in summary["profile_time_to_first_step"].items():
        lines.append(f"| {name} | {p['cli_and_ray_start_s']:.1f} | {p['trainer_build_s']:.1f} | "
                     f"{p['worker_group_start_s']:.1f} | {p['worker_setup_s']:.1f} | {p['first_step_s']:.2f} |")
    for cost in summary["sweep_cost"]:
        p = cost["parts"]
        lines += ["", f"Sweep cost, launcher {cost['launcher']}: `orchestrator sweep {cost['job']}` ({cost['trials']} "
                  f"trials, {cost['failed']} failed) took {cost['wall_s']:.0f} s, of which training {p['training_s']:.0f} s "
                  f"({100 * cost['training_fraction']:.0f}%): " + ", ".join(
                      f"{key.removesuffix('_s').replace('_', ' ')} {value:.1f} s" for key, value in p.items()
                      if key != "training_s") + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-sweep-cost", action="store_true", help="skip the default sweep's cost")
    parser.add_argument("--arms", help="comma-separated subset of: " + ", ".join(ARMS) + " (no sweep cost then)")
    parser.add_argument("--out", metavar="NAME", help="write bench/results/NAME.{json,md} (default: overhead for "
                        "every arm, overhead-subset for --arms, the file's own name for --summarize)")
    parser.add_argument("--summarize", metavar="JSON", help="run nothing: summarize again the runs an earlier "
                        "overhead.json holds (its command and machine kept)")
    args = parser.parse_args()
    if args.summarize:
        earlier = json.loads(Path(args.summarize).read_text())
        write(summarize(earlier["runs"], earlier["repeats"], earlier.get("sweep_cost"), earlier["command"],
                        earlier["machine"], earlier.get("date")), args.out or Path(args.summarize).stem)
        return
    names = args.arms.split(",") if args.arms else list(ARMS)
    unknown = [name for name in names if name not in ARMS]
    if unknown:
        parser.error(f"--arms: unknown arm(s) {', '.join(map(repr, unknown))}; known: {', '.join(ARMS)}")
    command = " ".join(["bench/overhead.py", *(f'"{a}"' if " " in a else a for a in sys.argv[1:])])
    runs = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names:
            try:
                result = ARMS[name]()
            except Exception as err:  # one retry: a run that failed measures nothing
                print(f"[{repeat + 1}/{args.repeats}] {name} failed ({type(err).__name__}: {err}); again", flush=True)
                result = ARMS[name]()
            runs[name].append(result)
            print(f"[{repeat + 1}/{args.repeats}] {name}: step {1000 * result['step_time_s']:.2f} ms, "
                  f"{result['samples_per_sec']:,.0f} samples/s, first step at {result['time_to_first_step_s']:.1f} s, "
                  f"wall {result['wall_s']:.1f} s", flush=True)
    cost = []
    if not args.no_sweep_cost and not args.arms:
        for launcher in ("ray_train", "actors"):
            print(f"sweep cost: the default sweep (jobs/digits-mlp.yaml), launcher {launcher} ...", flush=True)
            cost.append({k: v for k, v in sweep_cost(launcher).items() if k not in ("records", "started_wall")})
    write(summarize(runs, args.repeats, cost, f".venv/bin/python {command}"),
          args.out or ("overhead-subset" if args.arms else "overhead"))


def write(summary: dict, name: str) -> None:
    out = ROOT / "bench/results"
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown(summary))
    print(markdown(summary))
    print(f"written: bench/results/{name}.json, {name}.md")


if __name__ == "__main__":
    main()
