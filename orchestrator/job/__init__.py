"""The job: what a user asks for, validated once, and the plan of trials it becomes. Pure: no Ray, no files
beyond reading the job file.

- ``spec``: the job file's pydantic models and every check on them (the one place input is validated)
- ``plan``: a JobSpec becomes TrialPlans (typed, JSON-able), checked against a cluster's resources
- ``schema``: the job file's JSON Schema and reference page, generated from ``spec``
- ``rates``: link rates as people write them; ``tpu``: TPU slice geometry

May import: ``orchestrator.errors``, ``orchestrator.workloads`` (its entrypoints and data sizes), and each
other in that order (spec, then plan); nothing from running, measuring, modelling, deploying or report.
"""
