"""MLP or small CNN on digits (or synthetic images), in TensorFlow with a tf.distribute strategy.

One process:  python -m orchestrator.workloads.tf_train
Distributed:  the orchestrator runs ``train_loop`` on every worker under Ray Train's TensorflowTrainer,
              which writes TF_CONFIG; ``strategy`` picks the tf.distribute strategy:
              multi_worker_mirrored  one replica per worker, collectives across workers (gRPC/ring on CPU);
              mirrored               one worker, ``replicas`` local devices (GPUs, else logical CPUs);
              horovod                one replica per worker under horovod.ray.RayExecutor (no TF_CONFIG);
                                     the gradients are averaged with Horovod's grouped all-reduce.

Execution (``config["execution"]``): ``eager`` runs the step op by op from Python; ``compiled`` traces it
into a graph with tf.function (TensorFlow's usual); ``xla`` also compiles the forward and backward pass with
XLA (``jit_compile=True``), leaving the all-reduce and the optimiser update to the graph around it.

Rank 0 writes TensorBoard event files (loss, step time and throughput per step, the model graph) after
training, from values kept while it runs, and, when asked, exports the trained model to TF Lite
(orchestrator/workloads/export.py).

Batch arithmetic: every replica takes ``per_worker_batch`` samples a step, so the global batch is
per_worker_batch * num_replicas_in_sync, and the loss is averaged over that global batch, which is what
DDP's gradient averaging computes in torch_train.py.

Keras: TensorFlow 2.21 ships Keras 3, whose optimisers fail under MultiWorkerMirroredStrategy; the legacy
tf-keras package (TF_USE_LEGACY_KERAS=1, set before TensorFlow is imported) is used instead.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from orchestrator.workloads import data  # noqa: E402
from orchestrator.workloads.reporting import (  # noqa: E402
    StepLog,
    artifacts_dir,
    checkpoint_dir,
    default_config,
    export_dir,
    JOINED,
    RENDEZVOUS,
    latest_checkpoint,
    phase,
    read_extra,
    read_step,
    reporter,
    write_step,
)
from orchestrator.workloads.target import TargetClock  # noqa: E402


# A process can set up TensorFlow's collectives (and its logical CPUs) once: a worker that runs several trials
# of one worker group (launcher: actors reusing its processes) keeps the strategy it made for the first. The
# model, optimiser, data stream and traced step are made afresh by every train_loop.
_strategies: dict[tuple, tf.distribute.Strategy] = {}


def make_strategy(name: str | None, replicas: int) -> tf.distribute.Strategy:
    if name in ("multi_worker_mirrored", "mirrored"):
        key = (name, replicas, os.environ.get("TF_CONFIG"))
        if key not in _strategies:
            _strategies[key] = _new_strategy(name, replicas)
        return _strategies[key]
    return _new_strategy(name, replicas)


def _new_strategy(name: str | None, replicas: int) -> tf.distribute.Strategy:
    if name == "multi_worker_mirrored":
        # No CommunicationOptions(timeout_seconds=...): reliability.collective_timeout_s is DEADLINE's, below.
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(min(replicas, len(gpus)))])
        # No GPU: split the CPU into logical devices so that the strategy really runs `replicas` replicas.
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as err:
            raise RuntimeError(f"no TPU found on this worker ({err}); strategy tpu needs a TPU host") from None
        return tf.distribute.TPUStrategy(resolver)
    return tf.distribute.get_strategy()


class CollectiveDeadline:
    """reliability.collective_timeout_s for MultiWorkerMirrored: one thread per process, not one per collective.

    TensorFlow's own bound (CommunicationOptions.timeout_seconds) starts a thread for every collective it
    launches, which sleeps out the whole timeout before it checks (PosixEnv::SchedClosureAfter). At a few
    collectives a step and 600 s, a fast job keeps thousands of sleeping threads per worker: measured here,
    8,500 per worker after 1,600 steps of the default job at 2 workers; the repeats run in the same processes
    slowed as the threads piled up (0.74-0.85x the first repeat's throughput), and a fourth aborted when the
    machine ran out of thread ids. Instead, while armed, a worker whose training has not moved (``touch``) for
    ``timeout_s`` aborts its collectives: the one it waits in fails with the message below, naming the bound.
    Aborted collectives stay aborted in that process; the trial fails and its processes are not reused."""

    def __init__(self) -> None:
        self.timeout_s: Optional[float] = None
        self.since: Optional[float] = None  # monotonic time of the last progress while armed; None: disarmed
        self._thread: Optional[threading.Thread] = None

    @contextmanager
    def armed(self, timeout_s: Optional[float]) -> Iterator[None]:
        if not timeout_s:
            yield
            return
        self.timeout_s, self.since = float(timeout_s), time.monotonic()
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="collective-deadline", daemon=True)
            self._thread.start()
        try:
            yield
        finally:
            self.disarm()

    def touch(self) -> None:
        if self.since is not None:
            self.since = time.monotonic()

    def disarm(self) -> None:
        self.since = None

    def _watch(self) -> None:
        from tensorflow.python.eager import context

        while True:
            time.sleep(min(1.0, (self.timeout_s or 20) / 20))
            since = self.since
            if since is not None and time.monotonic() - since > self.timeout_s:
                self.since = None
                context.context().abort_collective_ops(
                    tf.errors.DEADLINE_EXCEEDED,
                    f"collective timed out: no step for {self.timeout_s:g} s (reliability.collective_timeout_s)")


DEADLINE = CollectiveDeadline()


def build_model(model: str, params: dict, image_size: int, seed: int) -> tf.keras.Model:
    """The model with the shared NumPy initial weights (the same numbers torch_train.py loads)."""
    layers = tf.keras.layers
    if model == "mlp":
        hidden = params.get("hidden", [128, 128])
        stack = [layers.Flatten()] + [layers.Dense(w, activation="relu") for w in hidden]
        weights = data.mlp_weights(image_size * image_size, hidden, seed)
    else:
        channels = params.get("channels", [16, 32])
        stack = [layers.Reshape((image_size, image_size, 1))]
        stack += [layers.Conv2D(c, 3, padding="same", activation="relu") for c in channels]
        stack += [layers.MaxPool2D(2), layers.Flatten()]
        weights = data.cnn_weights(image_size, channels, seed)
    net = tf.keras.Sequential([tf.keras.Input((image_size, image_size)), *stack, layers.Dense(data.NUM_CLASSES)])
    net.set_weights(data.tf_layout(model, weights, image_size))
    return net


def _task() -> tuple[int, int]:
    """(rank, workers) from TF_CONFIG, which Ray Train's TensorflowTrainer writes; (0, 1) without it."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    if not config:
        return 0, 1
    return config["task"]["index"], len(config["cluster"]["worker"])


def train_loop(config: dict) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(config["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(config["threads"])
    phase(RENDEZVOUS)  # next: hvd.init, or MultiWorkerMirroredStrategy's barrier, which wait for every rank
    hvd = None
    if config.get("strategy") == "horovod":
        import horovod.tensorflow as hvd

        hvd.init()
    bound = config.get("collective_timeout_s") if config.get("strategy") == "multi_worker_mirrored" else None
    with DEADLINE.armed(bound):  # from the strategy's own barrier across workers (its first collective) on
        strategy = make_strategy(config.get("strategy"), config.get("replicas", 1))
        _train(config, strategy, hvd)


def _train(config: dict, strategy: tf.distribute.Strategy, hvd) -> None:
    rank, workers = (hvd.rank(), hvd.size()) if hvd else _task()
    per_replica = config["per_worker_batch"]
    global_batch = per_replica * strategy.num_replicas_in_sync  # under Horovod: this worker's batch
    worker_batch = global_batch if hvd else global_batch // workers  # the samples this worker takes a step

    x_train, y_train, x_test, y_test = data.load(
        config["dataset"], config["num_samples"], config["image_size"], config["seed"]
    )

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        pipeline, pipelines = (rank, workers) if hvd else (context.input_pipeline_id, context.num_input_pipelines)
        mine = data.shard(len(x_train), pipeline, pipelines)
        local = tf.data.Dataset.from_tensor_slices((x_train[mine], y_train[mine]))
        local = local.shuffle(len(mine), seed=config["seed"] + pipeline).repeat()
        local = local.batch(context.get_per_replica_batch_size(global_batch), drop_remainder=True)
        # From where a restored run was: its first first_step - 1 batches were trained before the restart.
        return local.skip(first_step - 1).prefetch(2)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)

    with strategy.scope():
        model = build_model(config["model"], config["params"], config["image_size"], config["seed"])
        optimizer = tf.keras.optimizers.SGD(config["learning_rate"], momentum=config["momentum"])

    execution = config.get("execution") or "compiled"

    def compute_gradients(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            per_sample = tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            loss = tf.nn.compute_average_loss(per_sample, global_batch_size=global_batch)
        return loss, tape.gradient(loss, model.trainable_variables)

    if execution == "xla":
        compute_gradients = tf.function(compute_gradients, jit_compile=True)

    def replica_step(images, labels):
        loss, gradients = compute_gradients(images, labels)
        if hvd:  # the loss is this worker's batch mean: the average over workers is the global-batch mean
            # Named: Horovod matches collectives across ranks by name, and its default name comes from the
            # tensors' names, which carry Keras's per-process layer counters: a rank that built another model
            # before (rank 0's export, in a process kept for the next repeat) would wait on a name no other
            # rank sends.
            gradients = hvd.grouped_allreduce(gradients, op=hvd.Average, name="gradients")
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    def train_step(iterator):
        images, labels = next(iterator)
        losses = strategy.run(replica_step, args=(images, labels))
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        # The global-batch mean, as MultiWorkerMirrored reports it (under Horovod each loss is one worker's).
        return hvd.allreduce(loss, op=hvd.Average, name="loss") if hvd else loss

    if execution != "eager":
        train_step = tf.function(train_step)

    if hvd:
        hvd.broadcast_variables(model.variables, root_rank=0)
    report = reporter()
    state = tf.train.Checkpoint(model=model, optimizer=optimizer)
    first_step, clock_state = 1, None
    with latest_checkpoint() as restored:
        if restored is not None:  # a restart after a failure: carry on from the last checkpoint
            state.read(str(restored / "state")).assert_existing_objects_matched()
            first_step = read_step(restored) + 1
            clock_state = read_extra(restored).get("target_clock")
    stream = iter(strategy.distribute_datasets_from_function(dataset_fn, options))
    clock = TargetClock(config.get("target"), lambda: accuracy(model, x_test, y_test),
                        global_batch * workers if hvd else global_batch, clock_state)
    already = clock.check_start()
    if already:  # bad input, said once and not retried: the driver turns it into the trial's error
        report({"step": 0, "target_already_met": already})
        return

    logdir = artifacts_dir("tensorboard") if rank == 0 else None

    def open_writer():
        writer = tf.summary.create_file_writer(str(logdir))
        shape = (None, config["image_size"], config["image_size"])
        with writer.as_default():
            tf.summary.graph(tf.function(lambda x: model(x, training=False)).get_concrete_function(
                tf.TensorSpec(shape, tf.float32)).graph)

        def write(scalars):
            with writer.as_default():
                for tag, value, step in scalars:
                    tf.summary.scalar(tag, value, step=step)
            writer.flush()

        return write, writer.close

    log = StepLog(open_writer, global_batch * workers if hvd else global_batch) if logdir else None

    every = config.get("checkpoint_every") or 0
    step_times: list[float] = []
    losses: list[float] = []
    for step in range(first_step, config["steps"] + 1):
        clock.touch()
        DEADLINE.touch()
        start = time.perf_counter()
        loss_value = float(train_step(stream))  # .numpy() waits for the step, so the time is the step's
        step_times.append(time.perf_counter() - start)
        losses.append(loss_value)
        if step == first_step:
            phase(JOINED)  # the first step's collectives are done: every rank is in
        if step == 1:
            first_step_wall = time.time()  # when step 1 was done: the end of the time to first step

        hit = clock.after(step, loss_value)  # outside the timed step
        last = step == config["steps"] or clock.stop
        checkpoint_now = every and step % every == 0 and not last
        if step % config["report_every"] == 0 or last or checkpoint_now or hit:
            metrics = {
                "step": step,
                "loss": loss_value,
                # Samples this worker processed: its local replicas' share of the global batch.
                "samples": worker_batch * len(step_times),
                "step_times_s": step_times,
            }
            if hit:
                metrics["target_reached"] = hit
            if step - len(step_times) < 1 <= step:
                metrics["first_step_wall"] = first_step_wall
            if log:
                log.add(step, losses, step_times)
            if last and len(x_test):
                metrics["test_accuracy"] = accuracy(model, x_test, y_test)
            if last and config.get("breakdown"):  # after the timed steps and the accuracy, model restored
                metrics["breakdown"] = step_breakdown(
                    strategy, model, optimizer, compute_gradients, train_step, stream, config, workers, hvd, execution)
            if checkpoint_now:
                with checkpoint_dir() as directory:
                    # Every worker writes (variables are mirrored); rank 0's copy is the checkpoint.
                    state.write(f"{directory}/state")
                    write_step(directory, step, {"target_clock": clock.state()})
                    report({**metrics, "checkpoint_step": step}, directory if rank == 0 else None)
            else:
                report(metrics)
            step_times, losses = [], []
        if last:
            break
    DEADLINE.disarm()  # no collectives after this: TensorBoard files and rank 0's exports may take long
    if log:
        log.close()
    directory = export_dir(config, rank)
    if directory:
        from orchestrator.workloads import export

        plain = build_model(config["model"], config["params"], config["image_size"], config["seed"])
        plain.set_weights(model.get_weights())  # out of the strategy's scope: plain variables to convert
        runs = config["export"]["latency_runs"]
        export.tf_models(plain, x_test, y_test, x_train[:1], directory, runs, config["threads"], config["dataset"])


def step_breakdown(strategy, model, optimizer, compute_gradients, train_step, stream, config: dict, workers: int,
                   hvd, execution: str) -> dict:
    """Sync and local steps in interleaved blocks, then the collective alone (orchestrator/workloads/breakdown.py).
    The local step applies this replica's gradients without cross-replica aggregation (Horovod: without its
    allreduce). The model and optimiser are saved first and restored after."""
    from orchestrator.workloads import breakdown

    started = time.perf_counter()
    saved_model = [v.numpy() for v in model.variables]
    saved_optimizer = [v.numpy() for v in optimizer.variables]

    def local_replica_step(images, labels):
        loss, gradients = compute_gradients(images, labels)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables), skip_gradients_aggregation=True)
        return loss

    def local_step(iterator):  # train_step without the aggregation (and without the loss's reduction)
        images, labels = next(iterator)
        losses = strategy.run(local_replica_step, args=(images, labels))
        return strategy.experimental_local_results(losses)[0]

    def fetch_only(iterator):
        images, _ = next(iterator)
        return strategy.experimental_local_results(images)[0][0, 0, 0]

    def nothing(iterator):
        return tf.constant(0.0)

    compiled = (lambda f: f) if execution == "eager" else tf.function
    local, fetch, empty = compiled(local_step), compiled(fetch_only), compiled(nothing)

    def timed(function) -> float:
        DEADLINE.touch()
        start = time.perf_counter()
        float(function(stream))
        return time.perf_counter() - start

    # The batch is fetched inside the step's graph, as in the timed steps: its share is a fetch-only graph's
    # time beyond an empty graph's (the call itself).
    for function in (fetch, empty):
        timed(function)
    fetch_s = max(0.0, statistics.median(timed(fetch) for _ in range(20)) - statistics.median(timed(empty) for _ in range(20)))

    def step(kind: str) -> tuple[float, float]:
        if kind == "sync":  # the timed step itself
            return 0.0, timed(train_step)
        return fetch_s, timed(local) - fetch_s

    settings = config["breakdown"]
    measured = breakdown.blocks(step, settings["blocks"], settings["steps"])
    for variable, value in zip(model.variables, saved_model):
        variable.assign(value)
    for variable, value in zip(optimizer.variables, saved_optimizer):
        variable.assign(value)
    size = breakdown.gradient_bytes([int(np.prod(v.shape)) for v in model.trainable_variables])
    replicas = workers if hvd else strategy.num_replicas_in_sync  # mirrored: one worker, N local replicas
    result = {"blocks": measured, "workers": replicas, "gradient_bytes": size}
    if replicas > 1:
        if hvd:
            result["backend"] = "horovod"

            buffers = {}

            def allreduce(nbytes):
                if nbytes not in buffers:
                    buffers[nbytes] = tf.zeros((nbytes // 4,), tf.float32)
                tensor = buffers[nbytes]
                start = time.perf_counter()
                hvd.allreduce(tensor, op=hvd.Sum).numpy()
                return time.perf_counter() - start

            def agree(seconds):
                total = hvd.allreduce(tf.constant([seconds], tf.float64), op=hvd.Sum).numpy()[0]
                return float(total) / hvd.size()
        else:
            result["backend"] = _collective_implementation(strategy)

            def allreduce(nbytes):
                reduce_once = _reducer(strategy, nbytes)
                DEADLINE.touch()
                start = time.perf_counter()
                strategy.experimental_local_results(reduce_once())[0].numpy()
                return time.perf_counter() - start

            def agree(seconds):  # one process (mirrored): nothing to agree with
                if workers == 1:
                    return seconds
                DEADLINE.touch()
                total = strategy.experimental_local_results(_agreement(strategy)(tf.constant(seconds, tf.float32)))[0]
                return float(total.numpy()[0]) / strategy.num_replicas_in_sync
        result["collective"] = breakdown.microbenchmark(allreduce, breakdown.message_sizes(size),
                                                        settings.get("repeats", 5), agree=agree)
    result["seconds"] = time.perf_counter() - started  # what the breakdown added to the trial's time
    return result


# The microbenchmark's all-reduce of each size, traced once per process and strategy (a trace is ~0.1 s, nine
# sizes a trial): the repeats of a reused worker group time the same graphs; the untimed calls before each
# size's timing stay as they were.
_reducers: dict[tuple, object] = {}


def _reducer(strategy, nbytes: int):
    key = (id(strategy), nbytes)
    if key not in _reducers:
        value = tf.zeros((nbytes // 4,), tf.float32)

        @tf.function
        def reduce_once():
            return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, value))

        _reducers[key] = reduce_once
    return _reducers[key]


def _agreement(strategy):
    """A scalar summed over every replica, the same on each (traced once per process and strategy)."""
    key = (id(strategy), "agree")
    if key not in _reducers:
        @tf.function
        def agree_once(value):
            def replica():  # a copy on the replica's device: an argument has none, and all_reduce needs one
                return tf.distribute.get_replica_context().all_reduce(
                    tf.distribute.ReduceOp.SUM, tf.reshape(tf.identity(value), [1]))

            return strategy.run(replica)

        _reducers[key] = agree_once
    return _reducers[key]


def _collective_implementation(strategy) -> str:
    """MultiWorkerMirrored's all-reduce implementation (RING on CPU unless told otherwise, NCCL on GPUs)."""
    options = getattr(strategy.extended, "_communication_options", None)
    implementation = getattr(options, "implementation", None)
    name = getattr(implementation, "name", None) or str(implementation or "AUTO")
    if name == "AUTO":
        return "NCCL" if tf.config.list_physical_devices("GPU") else "RING"
    return name


def accuracy(model: tf.keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    logits = model(images, training=False).numpy()
    return float((logits.argmax(1) == labels).mean())


if __name__ == "__main__":
    train_loop(default_config())
