"""PyTorch DDP and tf.distribute on plain Ray actors (``launcher: actors``), without Ray Train.

One actor per worker, gang-scheduled in one placement group (PACK, bundle i = rank i), as Horovod's
RayExecutor does. Before the training function runs, each actor sets up what Ray Train's backends would:

ddp                    ``torch.distributed.init_process_group`` (gloo on CPU, NCCL on GPU) with rank 0's
                       address, ``timeout`` = reliability.collective_timeout_s; RANK, WORLD_SIZE, LOCAL_RANK,
                       MASTER_ADDR and MASTER_PORT in the environment;
multi_worker_mirrored  TF_CONFIG naming every worker, for MultiWorkerMirroredStrategy;
mirrored               one actor holding all the replicas' resources (nothing to set up).

Why: a Ray Train trial starts a controller, a placement-group cleaner, a synchronisation actor and its
workers, each a new process importing ``ray.train`` (which imports Ray Data and pandas), and polls its
workers from the controller while they train. Here a trial is its workers and nothing else, and they import
only Ray and the workload. Measured in bench/overhead.py.

Worker reuse (plan.worker_group, sweep.reuse_workers): the repeats of one (arm, worker count) run one after
another in the same actors and placement group, which the sweep keeps between them (launchers.Kept). Each
repeat calls the training function afresh: a new model, optimiser, data stream and TensorBoard run; the
processes, their imports and the rendezvous (torch's process group, TF_CONFIG and TensorFlow's strategy,
which a process can make only once) are what is shared. A trial that fails closes its group.

What it gives up, shown in the plan: no restarts (a failed worker fails the trial, so reliability.max_failures
must be 0), no Ray Train checkpoints, and no Ray Train session, so it runs the built-in workloads only (a
user's Ray Train function calls ``ray.train.get_context()``, ``prepare_model``; the spec refuses it).
"""

from __future__ import annotations

import datetime
import os
import uuid

from orchestrator.running.launchers import KeptRun, PlacementTimeout, free_address, tf_config, worker_processes

RESTARTS = "none (a failed worker fails the trial; reliability.max_failures must be 0)"


def describe(plan) -> dict:
    resources = dict(plan.resources_per_worker)
    setup = {
        "ddp": {"torch.distributed": {"backend": _torch_backend(plan), "timeout_s": plan.collective_timeout_s}},
        "multi_worker_mirrored": {"TF_CONFIG": "every worker's address", "tf_strategy": "tf.distribute.MultiWorkerMirroredStrategy"},
        "mirrored": {"tf_strategy": "tf.distribute.MirroredStrategy", "replicas_per_worker": plan.workers},
    }[plan.strategy]
    return {
        "trainer": "Ray actors in one placement group (launcher: actors; no Ray Train)",
        "placement_group": {"bundles": [resources] * plan.ray_workers, "strategy": "PACK",
                            "timeout_s": plan.placement_timeout_s},
        **setup,
        "restarts": RESTARTS,
        "worker_processes": worker_processes(plan),
    }


def _torch_backend(plan) -> str:
    return "nccl" if plan.resources_per_worker.get("GPU", 0) > 0 else "gloo"


class WorkerGroup:
    """The actors of one trial, or of the trials of one worker group: placed, started and set up once.

    ``trials`` names the trials run in it so far, for the record (which repeats shared processes)."""

    def __init__(self, plan):
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self.id = uuid.uuid4().hex[:12]
        self.trials: list[str] = []
        self.workers: list = []
        resources = dict(plan.resources_per_worker)
        self.placement = placement_group([resources] * plan.ray_workers, strategy="PACK")
        try:
            try:
                ray.get(self.placement.ready(), timeout=plan.placement_timeout_s)
            except ray.exceptions.GetTimeoutError:
                raise PlacementTimeout(f"placement group of {plan.ray_workers} x {resources} not ready "
                                       f"in {plan.placement_timeout_s} s") from None
            actor = ray.remote(TrainWorker)
            options = {"num_cpus": resources.get("CPU", 0), "num_gpus": resources.get("GPU", 0),
                       "resources": {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}}
            self.workers = [
                actor.options(**options, scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.placement, placement_group_bundle_index=rank)).remote(dict(plan.env))
                for rank in range(plan.ray_workers)
            ]
            found = ray.get([w.address.remote() for w in self.workers])
            addresses, self.pids = [a for a, _ in found], [p for _, p in found]
            _first_failure([w.setup.remote(plan.strategy, addresses, rank, _torch_backend(plan), plan.collective_timeout_s)
                            for rank, w in enumerate(self.workers)], self.pids)
        except BaseException:
            self.close()
            raise

    def run(self, trial_id: str, function, config: dict, check=None) -> None:
        self.trials.append(trial_id)
        _first_failure([w.run.remote(function, config) for w in self.workers], self.pids, check)

    def alive(self, timeout_s: float = 10) -> bool:
        """Whether every worker still answers (one may have died between trials)."""
        import ray

        try:
            ray.get([w.address.remote() for w in self.workers], timeout=timeout_s)
            return True
        except Exception:
            return False

    def close(self) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        for w in self.workers:
            ray.kill(w)
        self.workers = []
        remove_placement_group(self.placement)


class ActorRun(KeptRun):
    """``fit()`` places the actors (or takes the kept ones of the plan's worker group), sets up the backend,
    runs the function on each, and raises the first worker's failure (the other workers are killed at once,
    not left in a collective)."""

    session = "actors"

    def start(self, plan) -> "WorkerGroup":
        return WorkerGroup(plan)


class WorkerDied(RuntimeError):
    """A worker's process ended (killed, out of memory, node lost) while the trial ran."""


def _first_failure(refs: list, pids: list[int], check=None, poll_s: float = 2.0) -> None:
    """Wait for every rank's call; raise the first failure as soon as it happens (the caller then kills the
    other ranks, which would otherwise wait in a collective until its timeout). ``check``: called every
    ``poll_s`` while they run (launchers.rendezvous_check), raising to end the trial."""
    import ray

    rank_of = {ref: rank for rank, ref in enumerate(refs)}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=poll_s if check else None)
        if not done:
            check()
            continue
        try:
            ray.get(done)
        except ray.exceptions.RayActorError as err:
            rank = rank_of[done[0]]
            raise WorkerDied(
                f"rank {rank} (pid {pids[rank]}) died: {str(err).splitlines()[0].rstrip('.')}. launcher: actors does "
                "not restart workers; use launcher: ray_train with reliability.max_failures for restarts"
            ) from err


class TrainWorker:
    """One training process (``ray::TrainWorker.run`` in ps)."""

    def __init__(self, env: dict[str, str]):
        # The trial's environment (threads, legacy Keras), set before anything reads it: neither torch nor
        # TensorFlow is imported yet. Not a runtime_env: a worker process with the job's own environment
        # starts sooner (Ray keeps some started), ~0.8 s a trial here.
        os.environ.update(env)

    def address(self) -> tuple[str, int]:
        """A free address for this worker (rank 0's is torch's rendezvous), and this process's pid."""
        return free_address(), os.getpid()

    def setup(self, strategy: str, addresses: list[str], rank: int, torch_backend: str, timeout_s: int) -> None:
        world = len(addresses)
        local = [a for a in addresses[:rank] if a.rsplit(":", 1)[0] == addresses[rank].rsplit(":", 1)[0]]
        master, port = addresses[0].rsplit(":", 1)
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(len(local)),
                          MASTER_ADDR=master.strip("[]"), MASTER_PORT=port)
        if strategy == "ddp":
            import torch.distributed as dist

            dist.init_process_group(torch_backend, init_method=f"tcp://{addresses[0]}", rank=rank, world_size=world,
                                    timeout=datetime.timedelta(seconds=timeout_s))
        elif strategy == "multi_worker_mirrored":
            os.environ["TF_CONFIG"] = tf_config(addresses, rank)

    def run(self, function, config: dict) -> None:
        # The process group (or TF_CONFIG) stays for the next trial of the group: the actor is killed, not
        # reused, once the group is done.
        function(config)


def make_trainer(plan, train_loop_per_worker, train_loop_config: dict, storage_path: str = "", kept=None) -> ActorRun:
    # storage_path is for Ray Train's checkpoints: this launcher keeps none and never restarts.
    return ActorRun(plan, train_loop_per_worker, train_loop_config, kept)
