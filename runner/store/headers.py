"""report_run headers: opening, reading how runs ended, failing them, requeueing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from runner.domain.errors import BadInput, one_line
from runner.domain.params import CHANGES
from runner.domain.runs import REPORT_TYPE, RUN_KEYED_TABLES, RunRequest, RunStatus
from runner.store.channel import notify_workers
from runner.store.tables import Tables, table_exists

log = logging.getLogger(__name__)


def open_run(
    conn: psycopg.Connection,
    tables: Tables,
    request: RunRequest,
    generated_at: datetime,
) -> None:
    """Write the IN_PROGRESS header (the caller commits it, so monitoring sees the run while it
    works). An existing header (a retry) must be a deal_aging run of the same tenant; it starts
    afresh."""
    run_id, params = request.run_id, request.params
    with conn.transaction():
        existing = conn.execute(
            sql.SQL("select report_type, tenant_id from {} where run_id = %s for update").format(
                tables.report_run
            ),
            (run_id,),
        ).fetchone()
        if existing and existing != (REPORT_TYPE, request.tenant_id):
            # Whose run it is stays private: the caller learns only that it is not theirs.
            raise BadInput(
                f"--run-id {run_id}: tenant {request.tenant_id} has no {REPORT_TYPE} run with"
                " this id to retry"
            )
        values = {
            "run_id": run_id,
            "tenant_id": request.tenant_id,
            "report_type": REPORT_TYPE,
            "generated_at": generated_at,
            "period_start": params.period_start,
            "period_end": params.period_end,
            "input_params": Jsonb(request.input_params()),
        }
        statement = (
            "update {} set generated_at = %(generated_at)s, period_start = %(period_start)s,"
            " period_end = %(period_end)s, input_params = %(input_params)s,"
            " status = 'IN_PROGRESS', finished_at = null, error_message = null,"
            " executor = 'runner' where run_id = %(run_id)s"
            if existing
            else "insert into {} (run_id, tenant_id, report_type, generated_at, period_start,"
            " period_end, input_params, status, executor) values (%(run_id)s, %(tenant_id)s,"
            " %(report_type)s, %(generated_at)s, %(period_start)s, %(period_end)s,"
            " %(input_params)s, 'IN_PROGRESS', 'runner')"
        )
        conn.execute(sql.SQL(statement).format(tables.report_run), values)


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as its header says."""

    run_id: UUID
    status: str
    error_message: str | None
    fact_rows: int


def track_changes(conn: psycopg.Connection, tables: Tables, run_ids: list[UUID]) -> bool:
    """Whether a run of these tracks changes (input_params' `changes`)."""
    with conn.transaction():
        found = conn.execute(
            sql.SQL(
                "select exists (select 1 from {} where run_id = any(%s)"
                " and input_params ->> 'changes' = %s)"
            ).format(tables.report_run),
            (run_ids, CHANGES[-1]),
        ).fetchone()
    return bool(found and found[0])


def outcomes(conn: psycopg.Connection, tables: Tables, run_ids: list[UUID]) -> list[Outcome]:
    """The runs' statuses and fact row counts, in the order asked; a missing header reads FAILED."""
    with conn.transaction():
        headers = {
            run_id: (status, error)
            for run_id, status, error in conn.execute(
                sql.SQL(
                    "select run_id, status, error_message from {} where run_id = any(%s)"
                ).format(tables.report_run),
                (run_ids,),
            )
        }
        # FAILED runs have no rows; not reading for them keeps a locked fact table from stalling.
        succeeded = [
            run_id for run_id, (status, _) in headers.items() if status == RunStatus.SUCCEEDED
        ]
        counts: dict[UUID, int] = dict(
            conn.execute(
                sql.SQL(
                    "select run_id, count(*) from {} where run_id = any(%s) group by run_id"
                ).format(tables.fact),
                (succeeded,),
            ).fetchall()
            if succeeded
            else []
        )
    return [
        Outcome(
            run_id,
            *headers.get(run_id, (RunStatus.FAILED, "its header was deleted")),
            counts.get(run_id, 0),
        )
        for run_id in run_ids
    ]


def delete_rows(conn: psycopg.Connection, tables: Tables, run_ids: list[UUID]) -> None:
    """The runs' rows go, table by table. A table someone else has locked is left alone (a run
    cannot have written to it meanwhile), and so is one this role may not delete from: the runs'
    status must change whatever happens to their rows, which readers of FAILED runs never see."""
    for table in RUN_KEYED_TABLES:
        if not table_exists(conn, tables, table):
            continue
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("delete from {} where run_id = any(%s)").format(tables.ident(table)),
                    (run_ids,),
                )
        except (psycopg.errors.LockNotAvailable, psycopg.errors.InsufficientPrivilege) as exc:
            log.warning("%s: rows of %s stay: %s", table, run_ids, one_line(str(exc), 200))


def mark_failed(
    conn: psycopg.Connection,
    tables: Tables,
    run_ids: list[UUID],
    reason: str,
    unfinished_only: bool = False,
) -> None:
    """FAILED with the reason, and no rows left behind. With unfinished_only, runs that ended
    already (the on-run-end hook closed them) keep their status."""
    with conn.transaction():
        failed = [
            run_id
            for (run_id,) in conn.execute(
                sql.SQL(
                    "update {} set status = 'FAILED', finished_at = clock_timestamp(),"
                    " error_message = %s where run_id = any(%s)"
                    " and (not %s or status in ('QUEUED', 'IN_PROGRESS')) returning run_id"
                ).format(tables.report_run),
                (reason, run_ids, unfinished_only),
            )
        ]
        if failed:
            delete_rows(conn, tables, failed)


def requeue(conn: psycopg.Connection, tables: Tables, run_ids: list[UUID], reason: str) -> None:
    """Back to QUEUED, without rows, for the next worker to claim."""
    with conn.transaction():
        delete_rows(conn, tables, run_ids)
        conn.execute(
            sql.SQL(
                "update {} set status = 'QUEUED', error_message = %s where run_id = any(%s)"
            ).format(tables.report_run),
            (reason, run_ids),
        )
        notify_workers(conn)


def reopen(conn: psycopg.Connection, tables: Tables, run_ids: list[UUID]) -> None:
    """IN_PROGRESS again, without an outcome or rows, for the same executor to compute anew; its
    attempts stay, since nobody else claimed it."""
    with conn.transaction():
        delete_rows(conn, tables, run_ids)
        conn.execute(
            sql.SQL(
                "update {} set status = 'IN_PROGRESS', finished_at = null, error_message = null"
                " where run_id = any(%s)"
            ).format(tables.report_run),
            (run_ids,),
        )
