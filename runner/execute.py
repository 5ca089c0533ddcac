"""One report run, start to finish: header, dbt, status. No failure leaves a run IN_PROGRESS
while the database can still be reached, nor facts under a FAILED run."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg

from runner import dbt_invocation, report_runs
from runner.database import connect
from runner.errors import RunFailed, one_line
from runner.params import ReportParams
from runner.report_runs import Tables
from runner.signals import interruption_reason, sigterm_interrupts


@dataclass(frozen=True)
class RunRequest:
    params: ReportParams
    run_id: UUID = field(default_factory=uuid4)
    source_schema: str | None = None


@dataclass(frozen=True)
class RunResult:
    run_id: UUID
    tenant_id: UUID
    generated_at: datetime
    input_params: dict[str, Any]
    fact_rows: int
    timings: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id),
            "status": "SUCCEEDED",
            "tenant_id": str(self.tenant_id),
            "generated_at": self.generated_at.isoformat(),
            "parameters": self.input_params,
            "fact_rows": self.fact_rows,
            "timings": self.timings,
        }


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_report_run(
    conn: psycopg.Connection, tables: Tables, dbt: dbt_invocation.DbtSettings
) -> None:
    """The header table must exist before the first header is written; its one definition is
    the dbt macro, so a missing table is made by dbt."""
    if report_runs.report_run_is_ready(conn, tables):
        return
    outcome = dbt_invocation.run_operation(dbt, "deal_aging_ensure_report_run")
    if not outcome.success:
        raise RunFailed(
            "(none yet)", f"cannot create {tables.schema}.report_run: {outcome.message}"
        )


def execute_run(request: RunRequest, dbt: dbt_invocation.DbtSettings, tables: Tables) -> RunResult:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    conn = connect()
    try:
        ensure_report_run(conn, tables, dbt)
        report_runs.claim(conn, request.run_id)
        generated_at = datetime.now(UTC)
        report_runs.open_run(conn, tables, request.run_id, request.params, generated_at)
        timings["header_s"] = round(time.perf_counter() - started, 3)
        if dbt.verbose:
            progress(f"run {request.run_id}: IN_PROGRESS, building {dbt_invocation.FACT_MODEL}")
        fact_rows = _compute(conn, request, dbt, tables, timings)
    finally:
        conn.close()
    timings["total_s"] = round(time.perf_counter() - started, 3)
    return RunResult(
        run_id=request.run_id,
        tenant_id=request.params.tenant_id,
        generated_at=generated_at,
        input_params=request.params.input_params(),
        fact_rows=fact_rows,
        timings=timings,
    )


def _compute(
    conn: psycopg.Connection,
    request: RunRequest,
    dbt: dbt_invocation.DbtSettings,
    tables: Tables,
    timings: dict[str, float],
) -> int:
    dbt_started = time.perf_counter()
    try:
        with sigterm_interrupts():
            outcome = dbt_invocation.run_report(dbt, [request.run_id], request.source_schema)
            timings["dbt_s"] = round(time.perf_counter() - dbt_started, 3)
            if not outcome.success:
                raise RunFailed(request.run_id, outcome.message)
            return report_runs.mark_succeeded(conn, tables, request.run_id)
    except RunFailed as exc:
        _fail(conn, tables, request.run_id, exc.reason)
        raise
    except KeyboardInterrupt as exc:
        reason = interruption_reason(exc)
        _fail(conn, tables, request.run_id, reason)
        raise RunFailed(request.run_id, reason) from None
    except Exception as exc:
        reason = one_line(f"{type(exc).__name__}: {exc}")
        _fail(conn, tables, request.run_id, reason)
        raise RunFailed(request.run_id, reason) from exc


def _fail(conn: psycopg.Connection, tables: Tables, run_id: UUID, reason: str) -> None:
    """Mark the run FAILED, on a new connection when the run's own died with the failure."""
    if conn.closed or conn.broken:
        conn = connect()
    else:
        conn.rollback()
    try:
        report_runs.mark_failed(conn, tables, [run_id], reason)
    except psycopg.OperationalError:
        with connect() as fresh:
            report_runs.mark_failed(fresh, tables, [run_id], reason)
