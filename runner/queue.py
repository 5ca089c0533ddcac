"""Requests in PostgreSQL: `submit` queues a run, workers claim them with FOR UPDATE SKIP LOCKED,
so any client and any number of workers share one queue with no other infrastructure."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from runner.execute import RunRequest
from runner.report_runs import FINISHED, QUEUE_CHANNEL, REPORT_TYPE, Tables, liveness_key


@dataclass(frozen=True)
class ClaimedRun:
    run_id: UUID
    tenant_id: UUID
    attempts: int
    waited_s: float


def submit(conn: psycopg.Connection, tables: Tables, request: RunRequest) -> None:
    """Queue the run (its header, status QUEUED) and wake the workers."""
    params = request.params
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "insert into {} (run_id, tenant_id, report_type, generated_at, period_start,"
                " period_end, input_params, status, attempts)"
                " values (%s, %s, %s, %s, %s, %s, %s, 'QUEUED', 0)"
            ).format(tables.report_run),
            (
                request.run_id,
                request.tenant_id,
                REPORT_TYPE,
                datetime.now(UTC),
                params.period_start,
                params.period_end,
                Jsonb(params.input_params()),
            ),
        )
        conn.execute(sql.SQL("notify {}").format(sql.Identifier(QUEUE_CHANNEL)))


def claim_next(conn: psycopg.Connection, tables: Tables) -> ClaimedRun | None:
    """Take the oldest queued run: IN_PROGRESS from now, its as-of instant (generated_at) fixed
    now, and this session holding its liveness lock before anyone can see it claimed."""
    with conn.transaction():
        row = conn.execute(
            sql.SQL(
                "select run_id, tenant_id, now() - generated_at from {}"
                " where report_type = %s and status = 'QUEUED'"
                " order by generated_at, run_id limit 1 for update skip locked"
            ).format(tables.report_run),
            (REPORT_TYPE,),
        ).fetchone()
        if row is None:
            return None
        run_id, tenant_id, waited = row
        conn.execute(
            sql.SQL("select pg_advisory_lock({})").format(liveness_key(sql.Literal(str(run_id))))
        )
        attempts = conn.execute(
            sql.SQL(
                "update {} set status = 'IN_PROGRESS', generated_at = now(),"
                " attempts = coalesce(attempts, 0) + 1, error_message = null"
                " where run_id = %s returning attempts"
            ).format(tables.report_run),
            (run_id,),
        ).fetchone()[0]
    return ClaimedRun(run_id, tenant_id, attempts, waited.total_seconds())


def release(conn: psycopg.Connection, run_id: UUID) -> None:
    conn.execute(
        sql.SQL("select pg_advisory_unlock({})").format(liveness_key(sql.Literal(str(run_id))))
    )
    conn.commit()


def wait_for(
    conn: psycopg.Connection, tables: Tables, run_id: UUID, poll_seconds: float = 0.1
) -> tuple[str, str | None]:
    """Block until the run is SUCCEEDED or FAILED; returns its status and error message."""
    while True:
        status, error = conn.execute(
            sql.SQL("select status, error_message from {} where run_id = %s").format(
                tables.report_run
            ),
            (run_id,),
        ).fetchone()
        conn.commit()
        if status in FINISHED:
            return status, error
        time.sleep(poll_seconds)
