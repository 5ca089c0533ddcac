"""Report runs, start to finish: headers, one dbt invocation, statuses. The on-run-end hook closes
each run (SUCCEEDED, or FAILED with its reason and no rows); whatever dbt left unfinished the
runner marks FAILED, and that cleanup never raises."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import psycopg

from runner import dbt_invocation, report_runs
from runner.database import connect
from runner.dbt_project import project_file
from runner.errors import RunFailed, RunnerError, one_line
from runner.params import ReportParams
from runner.report_runs import Tables
from runner.signals import interruption_reason, sigterm_interrupts
from runner.timeouts import Timeouts

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

log = logging.getLogger(__name__)

# The CRM's schema when nobody names another: the project's default of the var source_schema.
DEFAULT_SOURCE_SCHEMA: str = project_file()["vars"]["source_schema"]


@dataclass(frozen=True)
class RunRequest:
    tenant_id: UUID
    params: ReportParams
    run_id: UUID = field(default_factory=uuid4)
    source_schema: str = DEFAULT_SOURCE_SCHEMA
    # Recorded in the header for a worker to apply; None: the executor's own.
    timeouts: Timeouts | None = None

    def input_params(self) -> dict[str, Any]:
        """The header's input_params: the run's parameters and where they were computed from."""
        recorded = self.params.input_params() | {"source_schema": self.source_schema}
        return recorded | (self.timeouts.as_params() if self.timeouts else {})


@dataclass(frozen=True)
class RunResult:
    run_id: UUID
    tenant_id: UUID
    generated_at: datetime
    input_params: dict[str, Any]
    status: str
    error_message: str | None
    fact_rows: int
    timings: dict[str, float]

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id),
            "status": self.status,
            "tenant_id": str(self.tenant_id),
            "generated_at": self.generated_at.isoformat(),
            "parameters": self.input_params,
            "fact_rows": self.fact_rows,
            "error_message": self.error_message,
            "timings": self.timings,
        }


def ensure_setup(
    conn: psycopg.Connection,
    tables: Tables,
    dbt: dbt_invocation.DbtSettings,
    source_schema: str | None,
    manifest: Manifest | None = None,
    upgrade: bool = False,
) -> None:
    """Every relation of the report exists before a run is opened. Runners that find one missing
    take turns building them, so concurrent first runs never race on the same DDL. With upgrade,
    the setup runs even when everything exists, to bring it up to this version."""
    ready = report_runs.setup_is_complete(conn, tables)
    conn.commit()
    if ready and not upgrade:
        return
    try:
        with conn.transaction():
            report_runs.take_setup_lock(conn)
            if report_runs.setup_is_complete(conn, tables) and not upgrade:
                return
            log.info("building the report's tables and views in %s", tables.schema)
            outcome = dbt_invocation.run_setup(dbt, source_schema, manifest)
    except psycopg.errors.LockNotAvailable:
        raise RunnerError(
            f"another process has been setting up {tables.schema} for longer than the lock"
            " timeout; try again when it has finished"
        ) from None
    if not outcome.success:
        raise RunnerError(f"cannot set up the report in {tables.schema}: {outcome.message}")


def execute_runs(
    requests: list[RunRequest],
    dbt: dbt_invocation.DbtSettings,
    tables: Tables,
    source_schema: str | None = None,
    timeouts: Timeouts | None = None,
) -> list[RunResult]:
    """Open a header per request, compute them all in one dbt invocation, and report how each
    ended. Raises RunFailed only when the runner itself was stopped (SIGTERM, Ctrl-C)."""
    timeouts = timeouts or Timeouts.defaults()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    run_ids = [request.run_id for request in requests]
    conn = connect(timeouts=timeouts)
    try:
        ensure_setup(conn, tables, dbt, source_schema)
        for run_id in run_ids:
            report_runs.claim(conn, run_id)
        generated_at = datetime.now(UTC)
        with conn.transaction():
            for request in requests:
                report_runs.open_run(conn, tables, request, generated_at)
        timings["header_s"] = round(time.perf_counter() - started, 3)
        log.info("%d run(s) IN_PROGRESS: %s", len(run_ids), ", ".join(map(str, run_ids)))
        compute(conn, run_ids, dbt, tables, source_schema, timeouts, timings)
        ended = report_runs.outcomes(conn, tables, run_ids)
    finally:
        conn.close()
    timings["total_s"] = round(time.perf_counter() - started, 3)
    return [
        RunResult(
            run_id=request.run_id,
            tenant_id=request.tenant_id,
            generated_at=generated_at,
            input_params=request.input_params(),
            status=outcome.status,
            error_message=outcome.error_message,
            fact_rows=outcome.fact_rows,
            timings=timings,
        )
        for request, outcome in zip(requests, ended, strict=True)
    ]


def compute(
    conn: psycopg.Connection,
    run_ids: list[UUID],
    dbt: dbt_invocation.DbtSettings,
    tables: Tables,
    source_schema: str | None,
    timeouts: Timeouts,
    timings: dict[str, float],
    manifest: Manifest | None = None,
) -> dbt_invocation.DbtOutcome:
    """One dbt invocation for runs whose headers are IN_PROGRESS; afterwards none of them is.
    Raises RunFailed when SIGTERM or Ctrl-C stopped it."""
    dbt_started = time.perf_counter()
    try:
        with sigterm_interrupts():
            outcome = dbt_invocation.run_report(dbt, run_ids, source_schema, timeouts, manifest)
    except KeyboardInterrupt as exc:
        outcome = dbt_invocation.DbtOutcome(False, interruption_reason(exc), interrupted=True)
    except Exception as exc:
        outcome = dbt_invocation.DbtOutcome(False, one_line(f"{type(exc).__name__}: {exc}"))
    timings["dbt_s"] = round(time.perf_counter() - dbt_started, 3)
    # The hook closed every run it reached; what remains open, dbt never closed.
    fail_unfinished(conn, tables, run_ids, outcome.message or "dbt ended before closing the run")
    if outcome.interrupted:
        raise RunFailed(_label(run_ids), outcome.message)
    return outcome


def _label(run_ids: list[UUID]) -> str:
    return str(run_ids[0]) if len(run_ids) == 1 else f"batch of {len(run_ids)} runs"


def fail_unfinished(
    conn: psycopg.Connection, tables: Tables, run_ids: list[UUID], reason: str
) -> None:
    """Mark the runs still open FAILED, on a new connection when the runs' own died with the
    failure. Never raises: a run it cannot reach stays IN_PROGRESS for `sweep`."""
    for attempt in ("the runs' connection", "a new connection"):
        try:
            if attempt == "a new connection" or conn.closed or conn.broken:
                conn = connect()
            else:
                conn.rollback()
            report_runs.mark_failed(conn, tables, run_ids, reason, unfinished_only=True)
            return
        except (psycopg.Error, RunnerError) as exc:
            log.warning(
                "could not mark run(s) FAILED through %s: %s", attempt, one_line(str(exc), 300)
            )
