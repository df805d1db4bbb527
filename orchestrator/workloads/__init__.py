"""Built-in workloads: plain training code, the same models in both frameworks.

Each ``*_train.py`` module is a Ray Train training function (``train_loop(config)``) that also runs as a
single process (``python -m orchestrator.workloads.torch_train``). None of them imports the scheduler.
"""

# The function each framework's built-in workload runs on every worker.
ENTRYPOINTS = {
    "torch": "orchestrator.workloads.torch_train:train_loop",
    "tensorflow": "orchestrator.workloads.tf_train:train_loop",
}
