"""The Ray Train edge: run one TrialPlan and return what each worker recorded."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

from orchestrator import launchers
from orchestrator.launchers import harness
from orchestrator.plan import TrialPlan


@dataclass
class TrialRun:
    launched_wall: float
    ended_wall: float
    workers: list[dict]
    """One dict per worker process, from harness.train_loop_per_worker: rank, node, its stamped reports;
    every attempt's workers when the worker group was restarted after a failure."""


def _recorder_class():
    import ray

    @ray.remote(num_cpus=0)
    class Recorder:
        def __init__(self):
            self.workers: dict[str, dict] = {}

        def start(self, key: str, worker: dict) -> None:
            self.workers[key] = {**worker, "records": [], "finished_wall": None}

        def add(self, key: str, record: dict) -> None:
            self.workers[key]["records"].append(record)

        def finish(self, key: str, wall: float) -> None:
            self.workers[key]["finished_wall"] = wall

        def get(self) -> list[dict]:
            return sorted(self.workers.values(), key=lambda w: (w["started_wall"], w["rank"]))

    return Recorder


def run(plan: TrialPlan, storage_path: str) -> TrialRun:
    """Build the trainer the plan describes and fit it. Raises whatever Ray Train raises on failure."""
    import ray
    from ray.train import FailureConfig, RunConfig

    recorder = _recorder_class().remote()
    run_config = RunConfig(
        name=f"{plan.job}-{plan.trial_id}-{uuid.uuid4().hex[:8]}",
        storage_path=storage_path,
        worker_runtime_env={"env_vars": dict(plan.env)},
        failure_config=FailureConfig(max_failures=plan.max_failures),
    )
    loop_config = {
        "harness": {"entrypoint": plan.entrypoint, "sys_path": [os.getcwd()], "recorder": recorder},
        "train": plan.train_config,
    }
    trainer = launchers.get(plan.strategy).make_trainer(
        plan, harness.train_loop_per_worker, loop_config, run_config
    )
    launched = time.time()
    try:
        trainer.fit()
        return TrialRun(launched_wall=launched, ended_wall=time.time(), workers=ray.get(recorder.get.remote()))
    finally:
        ray.kill(recorder)
