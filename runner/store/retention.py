"""`prune`: old finished report runs go, with their rows, so a history that grows with every run
(every dashboard refresh through a worker adds one) stays as long as it is useful. Each tenant's
latest SUCCEEDED runs of the whole pipeline stay however old: they are what the dashboards read."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg import sql

from runner.domain.runs import FINISHED, REPORT_TYPE
from runner.store.headers import delete_rows
from runner.store.tables import Tables, table_exists

# Runs deleted per transaction: row locks and WAL stay small, and readers never wait long.
BATCH_SIZE = 500
# Runs without filters or breakdown: the predicate of models/marts/report_deal_aging_latest.sql.
UNFILTERED_RUN = sql.SQL(
    "period_start is null and period_end is null"
    " and input_params ->> 'pipeline_id' is null"
    " and input_params ->> 'stage_id' is null"
    " and input_params ->> 'principal_type' is null"
    " and input_params ->> 'principal_id' is null"
    " and input_params ->> 'breakdown' is null"
)


@dataclass(frozen=True)
class Retention:
    older_than_days: int  # finished (finished_at, else generated_at) longer ago than this
    keep_latest: int  # runs of each tenant the dashboards may show, kept whatever their age
    tenant_id: UUID | None = None  # one tenant, or all


def prunable_runs(conn: psycopg.Connection, tables: Tables, retention: Retention) -> list[UUID]:
    """The finished runs past retention, oldest first. QUEUED and IN_PROGRESS runs never are, nor
    each tenant's latest `keep_latest` SUCCEEDED unfiltered runs, the first of which the dashboards
    show."""
    if not table_exists(conn, tables, "report_run"):
        return []
    rows = conn.execute(
        sql.SQL(
            "select run_id from ("
            "  select run_id, on_dashboard, now() - coalesce(finished_at, generated_at) as age,"
            "    row_number() over ("
            "      partition by tenant_id, on_dashboard order by generated_at desc, run_id desc"
            "    ) as recency"
            "  from ("
            "    select *, status = 'SUCCEEDED' and ({}) as on_dashboard from {}"
            "    where report_type = %(report_type)s and status = any(%(finished)s)"
            "      and (%(tenant_id)s::uuid is null or tenant_id = %(tenant_id)s::uuid)"
            "  ) finished_runs"
            ") ranked_runs"
            " where age > make_interval(days => %(days)s)"
            "   and not (on_dashboard and recency <= %(keep)s)"
            " order by age desc, run_id"
        ).format(UNFILTERED_RUN, tables.report_run),
        {
            "report_type": REPORT_TYPE,
            "finished": list(FINISHED),
            "tenant_id": retention.tenant_id,
            "days": retention.older_than_days,
            "keep": retention.keep_latest,
        },
    ).fetchall()
    conn.commit()
    return [run_id for (run_id,) in rows]


def prune(conn: psycopg.Connection, tables: Tables, run_ids: list[UUID]) -> list[UUID]:
    """Delete these runs, their rows first, in batches; a run that another session has locked
    (a retry adopting it) or that is no longer finished is skipped. Returns the runs deleted."""
    deleted: list[UUID] = []
    for start in range(0, len(run_ids), BATCH_SIZE):
        with conn.transaction():
            locked = [
                run_id
                for (run_id,) in conn.execute(
                    sql.SQL(
                        "select run_id from {} where run_id = any(%s)"
                        " and status = any(%s) for update skip locked"
                    ).format(tables.report_run),
                    (run_ids[start : start + BATCH_SIZE], list(FINISHED)),
                )
            ]
            if locked:
                delete_rows(conn, tables, locked)
                conn.execute(
                    sql.SQL("delete from {} where run_id = any(%s)").format(tables.report_run),
                    (locked,),
                )
        deleted += locked
    return deleted
