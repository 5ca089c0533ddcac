"""Bounds on every wait of a report run: how long a statement may wait for a lock, and run."""

from __future__ import annotations

from dataclasses import dataclass

from runner.domain.errors import BadInput
from runner.domain.vocabulary import project_file

LOCK_VAR = "lock_timeout_seconds"
STATEMENT_VAR = "statement_timeout_seconds"
# PostgreSQL keeps both settings in milliseconds, in an integer.
MAX_SECONDS = 2_147_483


def project_defaults() -> tuple[int, int]:
    """The defaults of dbt_project.yml, so the runner and the analysts' dbt share one definition."""
    project_vars = project_file()["vars"]
    return int(project_vars[LOCK_VAR]), int(project_vars[STATEMENT_VAR])


def parse_seconds(option: str, text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > MAX_SECONDS:
        raise BadInput(
            f"{option}: expected a whole number of seconds from 0 (no limit) to {MAX_SECONDS},"
            f" got {text!r}"
        )
    return int(text)


@dataclass(frozen=True)
class Timeouts:
    lock_seconds: int
    statement_seconds: int

    @classmethod
    def from_options(cls, lock: str | None, statement: str | None) -> Timeouts:
        default_lock, default_statement = project_defaults()
        return cls(
            lock_seconds=default_lock if lock is None else parse_seconds("--lock-timeout", lock),
            statement_seconds=default_statement
            if statement is None
            else parse_seconds("--statement-timeout", statement),
        )

    @classmethod
    def defaults(cls) -> Timeouts:
        return cls(*project_defaults())

    def connection_options(self) -> str:
        """libpq's `options` for the runner's own connections."""
        return (
            f"-c lock_timeout={self.lock_seconds}s -c statement_timeout={self.statement_seconds}s"
        )

    def dbt_environment(self) -> dict[str, str]:
        """What the project's macros read for an invocation the runner makes (macros/timeouts.sql)."""
        return {
            f"DEAL_AGING_{LOCK_VAR.upper()}": str(self.lock_seconds),
            f"DEAL_AGING_{STATEMENT_VAR.upper()}": str(self.statement_seconds),
        }

    def as_params(self) -> dict[str, int]:
        return {LOCK_VAR: self.lock_seconds, STATEMENT_VAR: self.statement_seconds}
