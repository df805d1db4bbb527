"""A user training function that fails on purpose, to check that a failed trial is recorded."""

import ray.train


def train_func(config):
    ray.train.report({"epoch": 0})
    raise RuntimeError("deliberate failure at epoch 1")
