"""Report runs, start to finish: headers, one dbt invocation, statuses. The on-run-end hook closes
each run (SUCCEEDED, or FAILED with its reason and no rows); whatever dbt left unfinished the
runner marks FAILED, and that cleanup never raises."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import psycopg

from runner.dbt import invocation
from runner.domain.errors import RunFailed, RunnerError, one_line
from runner.domain.interruptions import interruption_reason, sigterm_interrupts
from runner.domain.runs import RunRequest, RunResult
from runner.domain.timeouts import Timeouts
from runner.store import headers, liveness
from runner.store.connection import connect
from runner.store.tables import Tables, setup_is_complete, take_setup_lock

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

log = logging.getLogger(__name__)


def ensure_setup(
    conn: psycopg.Connection,
    tables: Tables,
    dbt: invocation.DbtSettings,
    source_schema: str | None,
    manifest: Manifest | None = None,
    upgrade: bool = False,
    timeouts: Timeouts | None = None,
    optional_tables: bool = False,
) -> None:
    """Every relation of the report exists before a run is opened. Runners that find one missing
    take turns building them, so concurrent first runs never race on the same DDL. With upgrade,
    the setup runs even when everything exists, to bring it up to this version; with
    optional_tables, it also creates the missing optional tables."""
    ready = setup_is_complete(conn, tables)
    conn.commit()
    if ready and not upgrade:
        return
    try:
        with conn.transaction():
            take_setup_lock(conn)
            if setup_is_complete(conn, tables) and not upgrade:
                return
            log.info("building the report's tables and views in %s", tables.schema)
            outcome = invocation.run_setup(
                dbt, source_schema, timeouts or Timeouts.defaults(), manifest, optional_tables
            )
    except psycopg.errors.LockNotAvailable:
        raise RunnerError(
            f"another process has been setting up {tables.schema} for longer than the lock"
            " timeout; try again when it has finished"
        ) from None
    if not outcome.success:
        raise RunnerError(f"cannot set up the report in {tables.schema}: {outcome.message}")


def execute_runs(
    requests: list[RunRequest],
    dbt: invocation.DbtSettings,
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
        ensure_setup(conn, tables, dbt, source_schema, timeouts=timeouts)
        for run_id in run_ids:
            liveness.claim(conn, run_id)
        generated_at = datetime.now(UTC)
        with conn.transaction():
            for request in requests:
                headers.open_run(conn, tables, request, generated_at)
        timings["header_s"] = round(time.perf_counter() - started, 3)
        log.info("%d run(s) IN_PROGRESS: %s", len(run_ids), ", ".join(map(str, run_ids)))
        _compute(conn, run_ids, dbt, tables, source_schema, timeouts, timings)
        ended = headers.outcomes(conn, tables, run_ids)
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


def _compute(
    conn: psycopg.Connection,
    run_ids: list[UUID],
    dbt: invocation.DbtSettings,
    tables: Tables,
    source_schema: str | None,
    timeouts: Timeouts,
    timings: dict[str, float],
) -> None:
    """One dbt invocation for runs whose headers are IN_PROGRESS; afterwards none of them is.
    Raises RunFailed when SIGTERM or Ctrl-C stopped it."""
    dbt_started = time.perf_counter()
    try:
        with sigterm_interrupts():
            outcome = invocation.run_report(dbt, run_ids, source_schema, timeouts)
    except KeyboardInterrupt as exc:
        outcome = invocation.DbtOutcome(False, interruption_reason(exc), interrupted=True)
    except Exception as exc:
        outcome = invocation.DbtOutcome(False, one_line(f"{type(exc).__name__}: {exc}"))
    timings["dbt_s"] = round(time.perf_counter() - dbt_started, 3)
    # The hook closed every run it reached; what remains open, dbt never closed.
    fail_unfinished(conn, tables, run_ids, outcome.message or "dbt ended before closing the run")
    if outcome.interrupted:
        raise RunFailed(_label(run_ids), outcome.message)


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
            headers.mark_failed(conn, tables, run_ids, reason, unfinished_only=True)
            return
        except (psycopg.Error, RunnerError) as exc:
            log.warning(
                "could not mark run(s) FAILED through %s: %s", attempt, one_line(str(exc), 300)
            )
