"""A user training function that fails on purpose, to check that a failed trial is recorded, and that what it
wrote before failing is kept."""

import os
from pathlib import Path

import ray.train


def train_func(config):
    ray.train.report({"epoch": 0})
    logs = Path(os.environ["ORCHESTRATOR_ARTIFACTS_DIR"]) / "logs"
    logs.mkdir()
    (logs / "last_words.txt").write_text(f"rank {ray.train.get_context().get_world_rank()} got to epoch 1\n")
    raise RuntimeError("deliberate failure at epoch 1")
