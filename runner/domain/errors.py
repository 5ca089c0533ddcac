"""The runner's failures, each with a message meant for a person and the exit code it maps to."""

from __future__ import annotations

import re


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


# Where a database error's own message ends: the SQL excerpt, the DETAIL quoting a failing row
# (another tenant's, in a batch), hints, dbt's pointer to the compiled file and its macro stack.
_MESSAGE_ENDS = (
    "LINE ",
    "DETAIL:",
    "HINT:",
    "CONTEXT:",
    "QUERY:",
    "compiled code at",
    "compiled Code at",
    "> in macro",
    "> called by",
)
_DBT_FRAME = re.compile(r"^(Database|Compilation|Runtime) Error in ")
_PATH = re.compile(r"\S*/\S+")


def failure_summary(message: str) -> str:
    """A dbt failure as one line for a header: the macro deal_aging_error_summary's rule."""
    kept: list[str] = []
    for line in message.splitlines():
        text = line.strip()
        if text.startswith(_MESSAGE_ENDS):
            break
        if text and not _DBT_FRAME.match(text):
            kept.append(text)
    summary = " ".join(_PATH.sub("", " ".join(kept)).split())
    return summary or "failed"


def one_line(text: str, limit: int = 2000) -> str:
    """Collapse a multi-line message (dbt's, PostgreSQL's) into one line of bounded length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
