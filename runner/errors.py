"""The runner's failures, each with a message meant for a person and the exit code it maps to."""

from __future__ import annotations


class RunnerError(Exception):
    exit_code = 1


class BadInput(RunnerError):
    """An argument is wrong; nothing was written."""

    exit_code = 2


class DatabaseUnreachable(RunnerError):
    """No PostgreSQL answered at the configured host and port."""


class RunFailed(RunnerError):
    """The run started and failed; its header says FAILED with the reason."""

    def __init__(self, run_id: object, reason: str) -> None:
        super().__init__(f"run {run_id} failed: {reason}")
        self.run_id = run_id
        self.reason = reason


def one_line(text: str, limit: int = 2000) -> str:
    """Collapse a multi-line message (dbt's, PostgreSQL's) into one line of bounded length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
