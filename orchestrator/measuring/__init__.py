"""Measuring: what the workers recorded becomes typed numbers, and the results file that holds them.

- ``results``: results.jsonl and the trial record, the one module that knows its schema (every consumer
  reads records through it); append under a lock, torn lines, stale points; ``locks``: one writer per --out
- ``measure``: throughput with warm-up excluded, time to first step, stalls, time to target
- ``breakdown``: a step's input, compute, exposed communication and wait; ``collective``: the all-reduce fit
- ``tensorboard``, ``artifacts``, ``loc``: event files, the files workers wrote, lines of training code

Pure but for ``results``, ``locks`` and ``artifacts`` (files). May import: job, workloads (sizes, names);
nothing from running, modelling or report.
"""
