"""Running: plans become trials on a Ray cluster, and their records land in the output directory.

- ``scheduler``: the sweep (plans -> trials -> results.jsonl -> reports), resume, adaptive order
- ``trial``: one trial through its launcher; the recorder actor; the failure diagnosis
- ``launchers``: one module per backend behind one interface (Ray Train torch/TF, plain actors, Horovod)
- ``cluster``: attach to a Ray cluster or start the embedded one; ``emulated``: the emulated multi-node cluster
- ``training``: ``orchestrator train``; ``replay``: a measured step as an accelerator-like job
- ``output``, ``progress``: where results go, what the terminal shows

May import: job, measuring (records, measurement), workloads, report (rendering at a sweep's end);
modelling only through report.
"""
