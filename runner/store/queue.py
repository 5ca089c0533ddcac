"""Requests in PostgreSQL: `submit` queues a run, workers claim them with FOR UPDATE SKIP LOCKED,
so any client and any number of workers share one queue with no other infrastructure."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from runner.domain.errors import BadInput, RunFailed
from runner.domain.runs import FINISHED, REPORT_TYPE, RunRequest
from runner.domain.timeouts import LOCK_VAR, STATEMENT_VAR, Timeouts
from runner.domain.vocabulary import DEFAULT_SOURCE_SCHEMA
from runner.store.channel import notify_workers
from runner.store.liveness import liveness_key
from runner.store.tables import Tables


@dataclass(frozen=True)
class ClaimedRun:
    run_id: UUID
    tenant_id: UUID
    attempts: int
    waited_s: float
    # The request's own bounds, when its submitter gave them.
    timeouts: Timeouts | None = None


def submit(conn: psycopg.Connection, tables: Tables, request: RunRequest) -> None:
    """Queue the run (its header, status QUEUED) and wake the workers."""
    params = request.params
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "insert into {} (run_id, tenant_id, report_type, generated_at, period_start,"
                " period_end, input_params, status, attempts, executor)"
                " values (%s, %s, %s, %s, %s, %s, %s, 'QUEUED', 0, 'worker')"
            ).format(tables.report_run),
            (
                request.run_id,
                request.tenant_id,
                REPORT_TYPE,
                datetime.now(UTC),
                params.period_start,
                params.period_end,
                Jsonb(request.input_params()),
            ),
        )
        notify_workers(conn)


def claim_next(conn: psycopg.Connection, tables: Tables, source_schema: str) -> ClaimedRun | None:
    """Take the oldest queued run of the CRM schema this worker computes from: IN_PROGRESS from
    now, its as-of instant (generated_at) fixed now, and this session holding its liveness lock
    before anyone can see it claimed."""
    with conn.transaction():
        row = conn.execute(
            sql.SQL(
                "select run_id, tenant_id, now() - generated_at, input_params from {}"
                " where report_type = %s and status = 'QUEUED'"
                " and coalesce(input_params ->> 'source_schema', %s) = %s"
                " order by generated_at, run_id limit 1 for update skip locked"
            ).format(tables.report_run),
            (REPORT_TYPE, DEFAULT_SOURCE_SCHEMA, source_schema),
        ).fetchone()
        if row is None:
            return None
        run_id, tenant_id, waited, input_params = row
        conn.execute(
            sql.SQL("select pg_advisory_lock({})").format(liveness_key(sql.Literal(str(run_id))))
        )
        attempts = conn.execute(  # type: ignore[index]
            sql.SQL(
                "update {} set status = 'IN_PROGRESS', generated_at = now(),"
                " attempts = coalesce(attempts, 0) + 1, error_message = null"
                " where run_id = %s returning attempts"
            ).format(tables.report_run),
            (run_id,),
        ).fetchone()[0]
    return ClaimedRun(
        run_id, tenant_id, attempts, waited.total_seconds(), _recorded_timeouts(input_params)
    )


def _recorded_timeouts(input_params: dict[str, Any]) -> Timeouts | None:
    """The bounds `submit` recorded, validated again: a header is input from outside too."""
    try:
        return Timeouts.from_options(str(input_params[LOCK_VAR]), str(input_params[STATEMENT_VAR]))
    except (KeyError, BadInput):
        return None


def release(conn: psycopg.Connection, run_id: UUID) -> None:
    conn.execute(
        sql.SQL("select pg_advisory_unlock({})").format(liveness_key(sql.Literal(str(run_id))))
    )
    conn.commit()


def wait_for(
    conn: psycopg.Connection,
    tables: Tables,
    run_id: UUID,
    timeout_seconds: float,
    deadline: float,
    poll_seconds: float = 0.1,
) -> tuple[str, str | None]:
    """Block until the run is SUCCEEDED or FAILED, at most until the deadline (time.monotonic) of
    the caller's timeout_seconds; returns its status and error message. A request still QUEUED
    then is withdrawn (FAILED), since nobody waits for it any more; one a worker is computing
    goes on."""
    while True:
        row = conn.execute(
            sql.SQL("select status, error_message from {} where run_id = %s").format(
                tables.report_run
            ),
            (run_id,),
        ).fetchone()
        conn.commit()
        if row is None:
            raise RunFailed(run_id, "its header was deleted while it was waited for")
        status, error = row
        if status in FINISHED:
            return status, error
        if time.monotonic() >= deadline:
            break
        time.sleep(poll_seconds)
    reason = f"no worker started it within {timeout_seconds:g} s (submit --wait --timeout)"
    with conn.transaction():
        withdrawn = conn.execute(
            sql.SQL(
                "update {} set status = 'FAILED', finished_at = clock_timestamp(),"
                " error_message = %s where run_id = %s and status = 'QUEUED' returning run_id"
            ).format(tables.report_run),
            (reason, run_id),
        ).fetchone()
    if withdrawn:
        raise RunFailed(run_id, reason)
    raise RunFailed(
        run_id,
        f"still being computed after {timeout_seconds:g} s; it goes on:"
        f" python -m runner show {run_id}",
    )
