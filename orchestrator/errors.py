"""Errors the CLI maps to exit codes.

Every error a user can cause is a ``UserError``: the CLI prints its one-line message and exits 2, never a
traceback. Anything else that goes wrong while training is a ``TrialError`` and is recorded, not raised.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    exit_code = 1


class UserError(OrchestratorError):
    """Bad input: a job spec, a CLI argument, or a request the cluster cannot hold."""

    exit_code = 2


class SpecError(UserError):
    """A job spec field is wrong. The message names the field, the value and what would be valid."""

    def __init__(self, source: str, field: str, message: str):
        self.source, self.field = source, field
        super().__init__(f"{source}: {field}: {message}")


class ClusterTooSmall(UserError):
    """A trial asks for more than the cluster has. Refused before anything starts."""


class TrialError(OrchestratorError):
    """A trial failed while running, and the orchestrator knows why; the sweep records it and carries on."""

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.details = details or {}
