"""Report runs, start to finish: the setup when something is missing, headers, the computation
(runner/usecases/compute.py), statuses."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import psycopg

from runner.dbt import invocation
from runner.domain.errors import RunFailed, RunnerError, one_line
from runner.domain.interruptions import sigterm_interrupts
from runner.domain.runs import RunRequest, RunResult
from runner.domain.timeouts import Timeouts
from runner.store import headers, liveness
from runner.store.connection import connect
from runner.store.tables import Tables, setup_is_complete, take_setup_lock
from runner.usecases.compute import ComputeSettings, compute_runs, fail_unfinished

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
        settings = ComputeSettings(dbt, tables, source_schema, timeouts)
        _compute(conn, run_ids, settings, timings)
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
    settings: ComputeSettings,
    timings: dict[str, float],
) -> None:
    """Close every run; raises RunFailed when SIGTERM or Ctrl-C stopped dbt."""
    dbt_started = time.perf_counter()
    try:
        with sigterm_interrupts():
            computed = compute_runs(conn, settings, run_ids)
    except psycopg.OperationalError as exc:
        fail_unfinished(conn, settings.tables, run_ids, f"database error: {one_line(str(exc))}")
        raise
    timings["dbt_s"] = round(time.perf_counter() - dbt_started, 3)
    if computed.interruption is not None:
        fail_unfinished(conn, settings.tables, computed.unfinished, computed.interruption)
        raise RunFailed(_label(run_ids), computed.interruption)


def _label(run_ids: list[UUID]) -> str:
    return str(run_ids[0]) if len(run_ids) == 1 else f"batch of {len(run_ids)} runs"
