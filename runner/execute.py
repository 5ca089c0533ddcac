"""Report runs, start to finish: headers, one dbt invocation, statuses. No failure leaves a run
IN_PROGRESS while the database can still be reached, nor facts under a FAILED run."""

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
    tenant_id: UUID
    params: ReportParams
    run_id: UUID = field(default_factory=uuid4)


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


def execute_runs(
    requests: list[RunRequest],
    dbt: dbt_invocation.DbtSettings,
    tables: Tables,
    source_schema: str | None = None,
) -> list[RunResult]:
    """Open a header per request, compute them all in one dbt invocation, close them."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    run_ids = [request.run_id for request in requests]
    conn = connect()
    try:
        ensure_report_run(conn, tables, dbt)
        for run_id in run_ids:
            report_runs.claim(conn, run_id)
        generated_at = datetime.now(UTC)
        with conn.transaction():
            for request in requests:
                report_runs.open_run(conn, tables, request, generated_at)
        timings["header_s"] = round(time.perf_counter() - started, 3)
        if dbt.verbose:
            progress(f"{len(run_ids)} run(s) IN_PROGRESS: {', '.join(map(str, run_ids))}")
        fact_rows = _compute(conn, run_ids, dbt, tables, source_schema, timings)
    finally:
        conn.close()
    timings["total_s"] = round(time.perf_counter() - started, 3)
    return [
        RunResult(
            run_id=request.run_id,
            tenant_id=request.tenant_id,
            generated_at=generated_at,
            input_params=request.params.input_params(),
            fact_rows=fact_rows[request.run_id],
            timings=timings,
        )
        for request in requests
    ]


def _compute(
    conn: psycopg.Connection,
    run_ids: list[UUID],
    dbt: dbt_invocation.DbtSettings,
    tables: Tables,
    source_schema: str | None,
    timings: dict[str, float],
) -> dict[UUID, int]:
    dbt_started = time.perf_counter()
    try:
        with sigterm_interrupts():
            outcome = dbt_invocation.run_report(dbt, run_ids, source_schema)
            timings["dbt_s"] = round(time.perf_counter() - dbt_started, 3)
            if not outcome.success:
                raise RunFailed(_label(run_ids), outcome.message)
            return report_runs.mark_succeeded(conn, tables, run_ids)
    except RunFailed as exc:
        _fail(conn, tables, run_ids, exc.reason)
        raise
    except KeyboardInterrupt as exc:
        reason = interruption_reason(exc)
        _fail(conn, tables, run_ids, reason)
        raise RunFailed(_label(run_ids), reason) from None
    except Exception as exc:
        reason = one_line(f"{type(exc).__name__}: {exc}")
        _fail(conn, tables, run_ids, reason)
        raise RunFailed(_label(run_ids), reason) from exc


def _label(run_ids: list[UUID]) -> str:
    return str(run_ids[0]) if len(run_ids) == 1 else f"batch of {len(run_ids)} runs"


def _fail(conn: psycopg.Connection, tables: Tables, run_ids: list[UUID], reason: str) -> None:
    """Mark the runs FAILED, on a new connection when the runs' own died with the failure."""
    if conn.closed or conn.broken:
        conn = connect()
    else:
        conn.rollback()
    try:
        report_runs.mark_failed(conn, tables, run_ids, reason)
    except psycopg.OperationalError:
        with connect() as fresh:
            report_runs.mark_failed(fresh, tables, run_ids, reason)
