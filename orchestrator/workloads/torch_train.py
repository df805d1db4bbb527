"""MLP or small CNN on digits (or synthetic images), in PyTorch.

One process:  python -m orchestrator.workloads.torch_train
Distributed:  the orchestrator runs ``train_loop`` on every worker.
              ddp      under Ray Train's TorchTrainer, which sets up the process group (gloo on CPU, NCCL on
                       GPU); the model is wrapped in DDP here.
              horovod  under horovod.ray.RayExecutor; Horovod's DistributedOptimizer averages the gradients.

Execution (``config["execution"]``): ``eager`` runs the model op by op; ``compiled`` runs it through
torch.compile (TorchDynamo captures the graph, Inductor generates the kernels; the first step pays for it).

Rank 0 writes TensorBoard event files (loss, step time and throughput per step, the model graph) after
training, from values kept while it runs, and, when asked, exports the trained model to ONNX
(orchestrator/workloads/export.py).

Batch arithmetic: each of the N workers takes ``per_worker_batch`` samples a step, so one optimiser step
sees N * per_worker_batch samples; DDP averages gradients over workers, which equals the mean loss over
the global batch. tf_train.py does the same with ``compute_average_loss(global_batch_size=...)``.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from orchestrator.workloads import data, device_time
from orchestrator.workloads.reporting import (
    StepLog,
    artifacts_dir,
    checkpoint_dir,
    default_config,
    export_dir,
    JOINED,
    RENDEZVOUS,
    latest_checkpoint,
    phase,
    reporter,
    tensorboard_without_tensorflow,
)
from orchestrator.workloads.target import TargetClock


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: list[int]):
        super().__init__()
        widths = [in_features, *hidden, data.NUM_CLASSES]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x):
        x = x.flatten(1)
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class CNN(nn.Module):
    def __init__(self, image_size: int, channels: list[int]):
        super().__init__()
        ins = [1, *channels[:-1]]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(ins, channels))
        self.head = nn.Linear(channels[-1] * (image_size // 2) ** 2, data.NUM_CLASSES)

    def forward(self, x):
        x = x.unsqueeze(1)  # (n, h, w) -> (n, 1, h, w)
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.head(F.max_pool2d(x, 2).flatten(1))


def build_model(model: str, params: dict, image_size: int, seed: int) -> nn.Module:
    """The model with the shared NumPy initial weights (the same numbers tf_train.py loads)."""
    if model == "mlp":
        net = MLP(image_size * image_size, params.get("hidden", [128, 128]))
        weights = data.mlp_weights(image_size * image_size, params.get("hidden", [128, 128]), seed)
        weights = [w.T if w.ndim == 2 else w for w in weights]  # nn.Linear stores (out, in)
    else:
        net = CNN(image_size, params.get("channels", [16, 32]))
        weights = data.cnn_weights(image_size, params.get("channels", [16, 32]), seed)
        weights[-2] = weights[-2].T
    with torch.no_grad():
        for param, value in zip(net.parameters(), weights, strict=True):
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return net


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: tuple, device: torch.device) -> float:
    images, labels = (torch.from_numpy(array).to(device) for array in batch)
    optimizer.zero_grad()  # set_to_none by default (and Horovod's optimiser takes no argument)
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()  # waits for the step to finish, so the caller's timing is the step's


def train_loop(config: dict) -> None:
    torch.set_num_threads(config["threads"])
    phase(RENDEZVOUS)  # next: hvd.init, or DDP's broadcast of the parameters, which wait for every rank
    hvd = None
    if config.get("strategy") == "horovod":
        import horovod.torch as hvd

        hvd.init()
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (hvd.rank(), hvd.size()) if hvd else (0, 1)
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")

    x_train, y_train, x_test, y_test = data.load(
        config["dataset"], config["num_samples"], config["image_size"], config["seed"]
    )
    mine = data.shard(len(x_train), rank, world)

    emulated = config["model"] == "emulated"
    if emulated:  # compute as device time (orchestrator/workloads/device_time.py); the jitter drawn per rank
        model = device_time.DeviceTimeModel(config["params"], config["per_worker_batch"], data.NUM_CLASSES,
                                            config["seed"] + rank)
    else:
        model = build_model(config["model"], config["params"], config["image_size"], config["seed"]).to(device)
    if distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if emulated:
        optimizer = device_time.DeviceTimeOptimizer(model.module if distributed else model, model.parameters())
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=config["learning_rate"], momentum=config["momentum"])
    if hvd:  # averages gradients over workers in step(), like DDP does in backward()
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
    report = reporter()
    net = model.module if distributed else model
    ddp = model if distributed else None
    if config.get("execution") == "compiled":
        # Compiled afresh, as in a new process, when the process ran an earlier trial (a reused worker group):
        # Dynamo's caches of that trial's modules would otherwise count against its recompile limit.
        torch._dynamo.reset()
        model = torch.compile(model)  # DDP under torch.compile: graphs split at gradient buckets
    logdir = artifacts_dir("tensorboard") if rank == 0 else None

    def open_writer():
        tensorboard_without_tensorflow()
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(logdir))
        if not emulated:  # a device-time model's graph is its sleeps
            writer.add_graph(net, torch.from_numpy(x_train[:1]).to(device))  # traced with torch.jit.trace

        def write(scalars):
            for tag, value, step in scalars:
                writer.add_scalar(tag, value, step)
            writer.flush()

        return write, writer.close

    log = StepLog(open_writer, config["per_worker_batch"] * world) if logdir else None

    first_step, clock_state = 1, None
    with latest_checkpoint() as restored:
        if restored is not None:  # a restart after a failure: carry on from the last checkpoint
            state = torch.load(restored / "state.pt", map_location=device, weights_only=True)
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            first_step = int(state["step"]) + 1
            clock_state = state.get("target_clock")
    # The data stream from where the restored run was: batches 1..first_step-1 were trained before the restart.
    stream = data.batches(x_train[mine], y_train[mine], config["per_worker_batch"], config["seed"] + rank,
                          start=first_step - 1)
    clock = TargetClock(config.get("target"), lambda: accuracy(net, x_test, y_test, device),
                        config["per_worker_batch"] * world, clock_state)
    already = clock.check_start()
    if already:  # bad input, said once and not retried: the driver turns it into the trial's error
        report({"step": 0, "target_already_met": already})
        return

    every = config.get("checkpoint_every") or 0
    step_times: list[float] = []
    cpu_mark = time.process_time()  # this process's CPU (every thread: the collective's, Ray's) per report
    losses: list[float] = []
    for step in range(first_step, config["steps"] + 1):
        clock.touch()
        start = time.perf_counter()
        loss_value = train_step(model, optimizer, next(stream), device)
        step_times.append(time.perf_counter() - start)
        losses.append(loss_value)
        if step == first_step:
            phase(JOINED)  # the first step's all-reduce is done: every rank is in
        if step == 1:
            first_step_wall = time.time()  # when step 1 was done: the end of the time to first step

        hit = clock.after(step, loss_value)  # outside the timed step
        last = step == config["steps"] or clock.stop
        checkpoint_now = every and step % every == 0 and not last
        if step % config["report_every"] == 0 or last or checkpoint_now or hit:
            metrics = {
                "step": step,
                "loss": loss_value,
                "samples": config["per_worker_batch"] * len(step_times),
                "step_times_s": step_times,
                "cpu_s": time.process_time() - cpu_mark,
            }
            if hit:
                metrics["target_reached"] = hit
            if step - len(step_times) < 1 <= step:
                metrics["first_step_wall"] = first_step_wall
                metrics["cpu_set"] = sorted(os.sched_getaffinity(0))  # the cores this rank may run on
            if log:
                log.add(step, losses, step_times)
            if last and len(x_test):
                metrics["test_accuracy"] = accuracy(net, x_test, y_test, device)
            if last and config.get("breakdown"):  # after the timed steps and the accuracy, model restored
                metrics["breakdown"] = step_breakdown(model, ddp, net, optimizer, stream, device, config, world, hvd)
            if checkpoint_now:
                with checkpoint_dir() as directory:
                    # Every rank reports; rank 0's state is the checkpoint (DDP keeps the ranks identical).
                    if rank == 0:
                        state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                                 "target_clock": clock.state()}
                        torch.save(state, f"{directory}/state.pt")
                    report({**metrics, "checkpoint_step": step}, directory if rank == 0 else None)
            else:
                report(metrics)
            step_times, losses = [], []
            cpu_mark = time.process_time()
        if last:
            break
    if log:
        log.close()
    directory = export_dir(config, rank)
    if directory:
        from orchestrator.workloads import export

        runs = config["export"]["latency_runs"]
        export.torch_models(net, x_test, y_test, x_train[:1], directory, runs, config["threads"], config["dataset"])


def step_breakdown(model, ddp, net, optimizer, stream, device, config: dict, world: int, hvd) -> dict:
    """Sync and local steps in interleaved blocks, then the collective alone (orchestrator/workloads/breakdown.py).
    The model and optimiser are saved first and restored after: training's result never sees these steps."""
    import copy

    from orchestrator.workloads import breakdown

    started = time.perf_counter()
    saved = copy.deepcopy(net.state_dict()), copy.deepcopy(optimizer.state_dict())

    def local_context():
        if ddp is not None:
            return ddp.no_sync()  # forward and backward both inside, so no bucket is all-reduced
        if hvd is not None:
            return _horovod_local(optimizer)
        return contextlib.nullcontext()

    def step(kind: str) -> tuple[float, float]:
        start = time.perf_counter()
        images, labels = (torch.from_numpy(array).to(device) for array in next(stream))
        fetched = time.perf_counter()
        with local_context() if kind == "local" else contextlib.nullcontext():
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.item()  # the forward done (on a GPU: synchronised), so that the backward is timed apart
            backward_start = time.perf_counter()
            loss.backward()
            backward_s = time.perf_counter() - backward_start
            optimizer.step()
            loss.item()
        return fetched - start, time.perf_counter() - fetched, backward_s

    settings = config["breakdown"]
    result = {"blocks": breakdown.blocks(step, settings["blocks"], settings["steps"]), "workers": world}
    net.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    size = breakdown.gradient_bytes([p.numel() for p in net.parameters() if p.requires_grad])
    result["gradient_bytes"] = size
    if ddp is not None:
        result.update(_ddp_timers(ddp))
    if world > 1:
        bucket = min(size, 25 * 1024 * 1024)  # DDP's bucket_cap_mb default
        if hvd is not None:
            result["backend"] = "horovod"

            buffers = {}

            def allreduce(nbytes):
                if nbytes not in buffers:
                    buffers[nbytes] = torch.zeros(nbytes // 4)
                tensor = buffers[nbytes]
                start = time.perf_counter()
                hvd.allreduce(tensor, op=hvd.Sum)
                return time.perf_counter() - start

            def agree(seconds):
                return float(hvd.allreduce(torch.tensor([seconds], dtype=torch.float64), op=hvd.Sum)) / hvd.size()
        else:
            result["backend"] = dist.get_backend()
            allreduce, agree = allreduce_timer(device), agreement(device)
        result["collective"] = breakdown.microbenchmark(allreduce, breakdown.message_sizes(size, bucket),
                                                        settings.get("repeats", 5), agree=agree)
    result["seconds"] = time.perf_counter() - started  # what the breakdown added to the trial's time
    return result


def allreduce_timer(device):
    """``allreduce(nbytes) -> seconds`` through the initialised torch.distributed process group (gloo, NCCL),
    one float32 buffer per size kept for the next call."""
    buffers = {}

    def allreduce(nbytes: int) -> float:
        if nbytes not in buffers:
            buffers[nbytes] = torch.zeros(nbytes // 4, device=device)
        start = time.perf_counter()
        dist.all_reduce(buffers[nbytes])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    return allreduce


def agreement(device):
    """``agree(seconds)``: the slowest rank's seconds, on every rank (one all-reduce with MAX), for the
    microbenchmark's iteration counts (orchestrator/workloads/breakdown.py)."""
    def agree(seconds: float) -> float:
        value = torch.tensor([seconds], dtype=torch.float64, device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return float(value.item())

    return agree


@contextlib.contextmanager
def _horovod_local(optimizer):
    """Horovod without its allreduce: the backward hooks count down a delay before they all-reduce, so a delay
    no step reaches keeps them quiet, and step() skips the synchronisation; both are put back after."""
    delays = dict(optimizer._allreduce_delay)
    for p in optimizer._allreduce_delay:
        optimizer._allreduce_delay[p] = 1 << 30
    try:
        with optimizer.skip_synchronize():
            yield
    finally:
        optimizer._allreduce_delay.update(delays)
        optimizer._handles.clear()


def _ddp_timers(ddp) -> dict:
    """DDP's own timers (its logging data, sampled iterations), as a cross-check: backward compute, backward
    communication and their overlap, in seconds."""
    buckets = {"bucket_bytes": ddp_buckets([p.numel() * p.element_size() for p in ddp.module.parameters()
                                            if p.requires_grad])}
    try:
        logged = ddp._get_ddp_logging_data()
    except Exception:  # a private API: its absence is not a failure
        return buckets
    keys = {"avg_backward_compute_time": "backward_compute_s", "avg_backward_comm_time": "backward_comm_s",
            "avg_backward_compute_comm_overlap_time": "overlap_s", "avg_forward_compute_time": "forward_compute_s"}
    found = {ours: logged[theirs] / 1e9 for theirs, ours in keys.items() if logged.get(theirs)}
    return {**buckets, "ddp_timers": found} if found else buckets


def ddp_buckets(sizes: list[int], first_cap: int = 1 << 20, cap: int = 25 << 20) -> list[int]:
    """The buckets DDP's reducer all-reduces after its first iteration, in order: the parameters in reverse
    (the order their gradients become ready), a bucket closed once it holds ``first_cap`` bytes (the first)
    or ``cap`` (the rest): the Reducer's rebuild rule (its logging data keeps the construction's buckets)."""
    out, current, limit = [], 0, first_cap
    for size in reversed(sizes):
        current += size
        if current >= limit:
            out.append(current)
            current, limit = 0, cap
    if current:
        out.append(current)
    return out


@torch.no_grad()
def accuracy(net: nn.Module, images: np.ndarray, labels: np.ndarray, device) -> float:
    net.eval()
    logits = net(torch.from_numpy(images).to(device))
    net.train()
    return float((logits.argmax(1).cpu().numpy() == labels).mean())


if __name__ == "__main__":
    train_loop(default_config())
