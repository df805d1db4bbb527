"""Modelling: measured curves become efficiency, fitted models, predictions, recommendations and costs. Pure.

- ``scaling``: curves and efficiency from the records; ``fit``: Amdahl, USL and step-time fits, held-out error
- ``physics``: the physical model (the backend's all-reduce, overlap, stragglers, host CPU) and what-ifs
- ``analysis``: the report as data, every number the reports show; ``recommend``: `orchestrator recommend`
- ``cost``, ``adaptive``, ``beyond_speed``: prices and answers, the adaptive sweep's next count, graph vs
  eager and deployment

May import: job, measuring; nothing from running or report (``recommend`` writes the reports it updates
through report, as the CLI edge it is).
"""
