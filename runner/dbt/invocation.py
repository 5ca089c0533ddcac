"""dbt, invoked in-process for the runner's report runs."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from runner.dbt import patches
from runner.dbt.project import PROJECT_DIR, profiles_dir_args
from runner.domain.errors import RunnerError, failure_summary, one_line
from runner.domain.interruptions import interruption_reason
from runner.domain.timeouts import Timeouts

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult
    from dbt.contracts.graph.manifest import Manifest

# The models a report run builds (the facts, the deal list, the changes); their ephemeral parents
# compile in.
REPORT_RUN_SELECTOR = "tag:report_run"
# Left out of an invocation whose runs do not track changes: it would only add a model's cost.
CHANGE_MODEL = "report_deal_aging_change"
# Everything the report needs in a database: the run-keyed tables and the views.
SETUP_SELECTOR = [
    REPORT_RUN_SELECTOR,
    "report_deal_aging_latest",
    "report_deal_aging_trend",
    "report_deal_aging_change_counts",
    "report_deal_aging_stage_limits",
]
# Read by the hooks at execution time only, so a new value never makes dbt re-parse the project
# (a changed --vars would).
RUN_IDS_ENV = "DEAL_AGING_RUN_IDS"
SETUP_ONLY_ENV = "DEAL_AGING_SETUP_ONLY"


@dataclass(frozen=True)
class DbtSettings:
    profiles_dir: str | None = None
    target: str | None = None
    verbose: bool = False

    def common_args(self) -> list[str]:
        # The runner's own target path, one per connection: its partial-parse cache is not thrown
        # away by analysts' runs with other vars, nor by runs against another database
        # (docs/decisions/run-ids-outside-vars.md).
        args = [
            "--project-dir",
            str(PROJECT_DIR),
            *profiles_dir_args(self.profiles_dir),
            "--target-path",
            str(PROJECT_DIR / "target" / "runner" / self.cache_key()),
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

    def cache_key(self) -> str:
        """One target path, so one partial-parse file, per profile, target and database."""
        parts = [
            self.profiles_dir or os.environ.get("DBT_PROFILES_DIR", ""),
            self.target or "",
            *(os.environ.get(name, "") for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE")),
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DbtOutcome:
    success: bool
    message: str
    # Ctrl-C or SIGTERM stopped dbt: the run itself did not fail.
    interrupted: bool = False


def run_report(
    settings: DbtSettings,
    run_ids: list[UUID],
    source_schema: str | None,
    timeouts: Timeouts,
    manifest: Manifest | None = None,
    track_changes: bool = True,
) -> DbtOutcome:
    """Build the report models for runs whose headers exist; the on-run-end hook closes them.
    Without track_changes (no run tracks changes) the change list is left out. With a manifest
    (a warm worker's), dbt skips loading and parsing the project."""
    selection = ["--select", REPORT_RUN_SELECTOR]
    if not track_changes:
        selection += ["--exclude", CHANGE_MODEL]
    args = ["run", *selection, "--no-write-json", *settings.common_args()]
    if manifest is not None:
        patches.forget_compilation(manifest)
    run_ids_text = ",".join(str(run_id) for run_id in run_ids)
    with _environment({RUN_IDS_ENV: run_ids_text, **timeouts.dbt_environment()}):
        return _outcome(_invoke(args + _vars(source_schema), manifest))


def run_setup(
    settings: DbtSettings,
    source_schema: str | None,
    timeouts: Timeouts,
    manifest: Manifest | None = None,
    optional_tables: bool = False,
) -> DbtOutcome:
    """Apply the pending migrations (and create the missing optional tables when asked), then
    build every relation of the report (the run-keyed tables, the views) computing no run."""
    with _environment(timeouts.dbt_environment()):
        migrated = _outcome(
            _invoke(
                [
                    "run-operation",
                    "deal_aging_setup",
                    *(["--args", "{optional_tables: true}"] if optional_tables else []),
                    *settings.common_args(),
                    *_vars(source_schema),
                ],
                manifest,
            )
        )
    if not migrated.success:
        return migrated
    args = ["run", "--select", *SETUP_SELECTOR, "--no-write-json", *settings.common_args()]
    if manifest is not None:
        patches.forget_compilation(manifest)
    with _environment({SETUP_ONLY_ENV: "1", **timeouts.dbt_environment()}):
        return _outcome(_invoke(args + _vars(source_schema), manifest))


def parse(settings: DbtSettings, source_schema: str | None) -> Manifest:
    """The parsed project, for a process that runs many reports (vars fixed at parse time)."""
    result = _invoke(["parse", *settings.common_args(), *_vars(source_schema)])
    if not result.success:
        raise RunnerError(f"cannot parse the dbt project: {_outcome(result).message}")
    return result.result  # type: ignore[return-value]


def _vars(source_schema: str | None) -> list[str]:
    return ["--vars", f"{{source_schema: {source_schema}}}"] if source_schema else []


def _invoke(args: list[str], manifest: Manifest | None = None) -> dbtRunnerResult:
    # Imported here: importing dbt takes over a second, which bad input and `list` need not wait.
    from dbt.cli.main import dbtRunner

    patches.install()

    # dbt logs to stdout; the runner's stdout is for its result alone.
    with contextlib.redirect_stdout(sys.stderr), patches.default_behavior_flags_kept():
        return dbtRunner(manifest=manifest).invoke(args)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _outcome(result: dbtRunnerResult) -> DbtOutcome:
    if result.success:
        return DbtOutcome(True, "")
    if isinstance(result.exception, KeyboardInterrupt):
        return DbtOutcome(False, interruption_reason(result.exception), interrupted=True)
    if result.exception is not None:
        return DbtOutcome(False, failure_summary(str(result.exception)))
    failures = dict.fromkeys(
        failure_summary(r.message or str(r.status))
        for r in getattr(result.result, "results", [])
        if str(r.status) in {"error", "fail", "runtime error", "skipped"}
    )
    return DbtOutcome(False, one_line("; ".join(failures) or "dbt reported a failure"))
