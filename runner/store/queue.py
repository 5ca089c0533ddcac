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


def submit(conn: psycopg.Connection, tables: Tables, *requests: RunRequest) -> None:
    """Queue the runs (their headers, status QUEUED) in one transaction and wake the workers."""
    submitted_at = datetime.now(UTC)
    with conn.transaction():
        with conn.cursor() as cursor:
            cursor.executemany(
                sql.SQL(
                    "insert into {} (run_id, tenant_id, report_type, generated_at, period_start,"
                    " period_end, input_params, status, attempts, executor)"
                    " values (%s, %s, %s, %s, %s, %s, %s, 'QUEUED', 0, 'worker')"
                ).format(tables.report_run),
                [
                    (
                        request.run_id,
                        request.tenant_id,
                        REPORT_TYPE,
                        submitted_at,
                        request.params.period_start,
                        request.params.period_end,
                        Jsonb(request.input_params()),
                    )
                    for request in requests
                ],
            )
        notify_workers(conn)


def claim_batch(
    conn: psycopg.Connection, tables: Tables, source_schema: str, limit: int
) -> list[ClaimedRun]:
    """Take the oldest queued run of the CRM schema this worker computes from and, up to `limit`
    runs in all, the next oldest with the same recorded bounds (one invocation applies one set):
    IN_PROGRESS from now, their as-of instant (generated_at) fixed now, and this session holding
    their liveness locks before anyone can see them claimed. Never waits for more to arrive."""
    queued = sql.SQL(
        "select run_id, tenant_id, now() - generated_at, input_params from {} where"
        " report_type = %(report_type)s and status = 'QUEUED'"
        " and coalesce(input_params ->> 'source_schema', %(default_schema)s) = %(schema)s"
    ).format(tables.report_run)
    oldest_first = sql.SQL(" order by generated_at, run_id limit %(limit)s for update skip locked")
    args: dict[str, Any] = {
        "report_type": REPORT_TYPE,
        "default_schema": DEFAULT_SOURCE_SCHEMA,
        "schema": source_schema,
        "limit": 1,
    }
    with conn.transaction():
        first = conn.execute(queued + oldest_first, args).fetchone()
        if first is None:
            return []
        rows = [first]
        if limit > 1:
            rows += conn.execute(
                queued
                + sql.SQL(
                    " and run_id <> %(first)s"
                    " and input_params -> %(lock)s is not distinct from"
                    " (select input_params -> %(lock)s from {run} where run_id = %(first)s)"
                    " and input_params -> %(statement)s is not distinct from"
                    " (select input_params -> %(statement)s from {run} where run_id = %(first)s)"
                ).format(run=tables.report_run)
                + oldest_first,
                args
                | {
                    "limit": limit - 1,
                    "first": first[0],
                    "lock": LOCK_VAR,
                    "statement": STATEMENT_VAR,
                },
            ).fetchall()
        run_ids = [row[0] for row in rows]
        conn.execute(
            sql.SQL(
                "select pg_advisory_lock({}) from unnest(%s::uuid[]) as claimed(run_id)"
            ).format(liveness_key(sql.Identifier("run_id"))),
            (run_ids,),
        )
        attempts: dict[UUID, int] = dict(
            conn.execute(
                sql.SQL(
                    "update {} set status = 'IN_PROGRESS', generated_at = now(),"
                    " attempts = coalesce(attempts, 0) + 1, error_message = null"
                    " where run_id = any(%s) returning run_id, attempts"
                ).format(tables.report_run),
                (run_ids,),
            ).fetchall()
        )
    return [
        ClaimedRun(
            run_id,
            tenant_id,
            attempts[run_id],
            waited.total_seconds(),
            _recorded_timeouts(input_params),
        )
        for run_id, tenant_id, waited, input_params in rows
    ]


def _recorded_timeouts(input_params: dict[str, Any]) -> Timeouts | None:
    """The bounds `submit` recorded, validated again: a header is input from outside too."""
    try:
        return Timeouts.from_options(str(input_params[LOCK_VAR]), str(input_params[STATEMENT_VAR]))
    except (KeyError, BadInput):
        return None


def release(conn: psycopg.Connection, run_ids: list[UUID]) -> None:
    """Let go of the runs' liveness locks: they are finished, or back in the queue."""
    conn.execute(
        sql.SQL("select pg_advisory_unlock({}) from unnest(%s::uuid[]) as done(run_id)").format(
            liveness_key(sql.Identifier("run_id"))
        ),
        (run_ids,),
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
