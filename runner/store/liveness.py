"""Which runs are being executed: advisory locks of runners and workers, statements of dbt
invocations; `sweep` for the runs whose executor is gone."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg import sql

from runner.domain.errors import BadInput
from runner.domain.runs import MAX_ATTEMPTS, REPORT_TYPE
from runner.domain.vocabulary import DBT_QUERY_COMMENT_PREFIX
from runner.store.headers import mark_failed, requeue
from runner.store.tables import Tables

log = logging.getLogger(__name__)


def liveness_key(run_id: sql.Composable) -> sql.Composed:
    """The advisory lock a runner or worker holds while it executes a run: its session dies with
    it, so `sweep` can tell a run whose executor is gone from one still being worked on. The
    macro deal_aging_nobody_executes uses the same key (tests/unit/test_vocabulary.py)."""
    return sql.SQL("hashtextextended({}::text, 0)").format(run_id)


def claim(conn: psycopg.Connection, run_id: UUID) -> None:
    acquired = conn.execute(  # type: ignore[index]
        sql.SQL("select pg_try_advisory_lock({})").format(liveness_key(sql.Literal(str(run_id))))
    ).fetchone()[0]
    conn.commit()
    if not acquired:
        raise BadInput(f"--run-id {run_id}: another runner is executing this run right now")


@dataclass(frozen=True)
class Swept:
    requeued: list[UUID]
    failed: list[UUID]


# A dbt invocation that opened runs itself holds no lock between its statements: it is alive while
# a session shows its query comment. Its gaps between two statements are short, so a run that
# looks abandoned is looked at again after this pause before it is swept.
DBT_GAP_SECONDS = 1.0


def _abandoned_runs(tables: Tables) -> sql.Composed:
    """Runs IN_PROGRESS for longer than the age whose executor is gone: nobody holds their
    liveness lock, and no session runs a statement of the dbt invocation that computes them
    (one whose query text this role may not read counts as alive)."""
    return sql.SQL(
        "select run_id, attempts, executor from {report_run} r where report_type = %s"
        " and status = 'IN_PROGRESS'"
        " and generated_at < now() - make_interval(mins => %s)"
        " and (not %s or attempts is not null)"
        " and (r.executor is distinct from 'dbt' or not exists ("
        "   select 1 from pg_stat_activity a"
        "   where a.datname = current_database() and a.pid <> pg_backend_pid()"
        "   and (a.query = '<insufficient privilege>'"
        "     or position(%s || r.dbt_invocation_id::text in a.query) > 0)))"
        " and pg_try_advisory_xact_lock({key})"
    ).format(report_run=tables.report_run, key=liveness_key(sql.Identifier("run_id")))


def sweep(
    conn: psycopg.Connection,
    tables: Tables,
    older_than_minutes: int,
    queued_only: bool = False,
) -> Swept:
    """A request a worker claimed from the queue whose worker is gone goes back to the queue, up
    to MAX_ATTEMPTS claims; any other abandoned run is marked FAILED and loses its rows."""
    query = _abandoned_runs(tables)
    args = (REPORT_TYPE, older_than_minutes, queued_only, DBT_QUERY_COMMENT_PREFIX)
    with conn.transaction():
        seen = conn.execute(query, args).fetchall()
    if any(executor == "dbt" for _, _, executor in seen):
        time.sleep(DBT_GAP_SECONDS)
    with conn.transaction():
        abandoned = [
            (run_id, attempts)
            for run_id, attempts, _ in conn.execute(
                query + sql.SQL(" and run_id = any(%s) for update skip locked"),
                (*args, [run_id for run_id, _, _ in seen]),
            ).fetchall()
        ]
        swept = Swept(
            requeued=[run_id for run_id, attempts in abandoned if _may_retry(attempts)],
            failed=[run_id for run_id, attempts in abandoned if not _may_retry(attempts)],
        )
        if swept.requeued:
            requeue(conn, tables, swept.requeued, "requeued: the worker that claimed it is gone")
        if swept.failed:
            mark_failed(
                conn,
                tables,
                swept.failed,
                f"abandoned: still IN_PROGRESS after {older_than_minutes} minutes and its"
                " runner is gone (marked by sweep)",
            )
    return swept


def _may_retry(attempts: int | None) -> bool:
    return attempts is not None and attempts < MAX_ATTEMPTS
