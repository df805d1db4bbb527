"""A user's Horovod function whose rank 1 never joins the first collective after ``hvd.init()``: a stall that
Horovod's stall inspector did not end here (the sweep's report watch does)."""

import time


def train_func(config):
    import horovod.torch as hvd
    import torch

    hvd.init()
    if hvd.rank() == 1:
        time.sleep(3600)
    hvd.allreduce(torch.ones(4), name="first")
