"""dbt, invoked in-process for the runner's report runs."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from runner.dbt_project import PROJECT_DIR, profiles_dir_args
from runner.errors import one_line
from runner.signals import interruption_reason

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult

# The models a report run builds (the fact and the deal list); their ephemeral parents compile in.
REPORT_RUN_SELECTOR = "tag:report_run"
# Read by the on-run-start hook at execution time only, so a new value never makes dbt re-parse
# the project (a changed --vars would: see ../shared/notes/dbt-fixed-cost.md).
RUN_IDS_ENV = "DEAL_AGING_RUN_IDS"


@dataclass(frozen=True)
class DbtSettings:
    profiles_dir: str | None = None
    target: str | None = None
    verbose: bool = False

    def common_args(self) -> list[str]:
        # The runner's own target path: its partial-parse cache is not thrown away by analysts'
        # runs with other vars in target/.
        args = [
            "--project-dir",
            str(PROJECT_DIR),
            *profiles_dir_args(self.profiles_dir),
            "--target-path",
            str(PROJECT_DIR / "target" / "runner"),
            "--log-path",
            str(PROJECT_DIR / "logs"),
            "--log-level-file",
            "debug" if self.verbose else "none",
            "--log-level",
            "debug" if self.verbose else "none",
        ]
        if self.target:
            args += ["--target", self.target]
        return args


@dataclass(frozen=True)
class DbtOutcome:
    success: bool
    message: str


def run_report(settings: DbtSettings, run_ids: list[UUID], source_schema: str | None) -> DbtOutcome:
    """Build the report models for runs whose headers exist."""
    args = ["run", "--select", REPORT_RUN_SELECTOR, "--no-write-json", *settings.common_args()]
    if source_schema:
        args += ["--vars", f"{{source_schema: {source_schema}}}"]
    with _environment(RUN_IDS_ENV, ",".join(str(run_id) for run_id in run_ids)):
        return _outcome(_invoke(args))


def run_operation(settings: DbtSettings, macro: str) -> DbtOutcome:
    return _outcome(_invoke(["run-operation", macro, *settings.common_args()]))


def _invoke(args: list[str]) -> dbtRunnerResult:
    # Imported here: importing dbt takes over a second, which bad input and `list` need not wait.
    from dbt.cli.main import dbtRunner

    # dbt logs to stdout; the runner's stdout is for its result alone.
    with contextlib.redirect_stdout(sys.stderr):
        return dbtRunner().invoke(args)


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _outcome(result: dbtRunnerResult) -> DbtOutcome:
    if result.success:
        return DbtOutcome(True, "")
    if isinstance(result.exception, KeyboardInterrupt):
        return DbtOutcome(False, interruption_reason(result.exception))
    if result.exception is not None:
        return DbtOutcome(False, one_line(str(result.exception)))
    failures = [
        f"{r.node.name}: {r.message or r.status}"
        for r in getattr(result.result, "results", [])
        if str(r.status) in {"error", "fail", "runtime error", "skipped"}
    ]
    return DbtOutcome(False, one_line("; ".join(failures) or "dbt reported a failure"))
