"""The report_run headers and their facts, as the runner reads and writes them (psycopg 3,
bound parameters). The table's one definition is the dbt macro deal_aging_ensure_report_run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from runner.execute import RunRequest

from runner.errors import BadInput

REPORT_TYPE = "deal_aging"
# Workers listen here for new requests; `submit` and requeues notify.
QUEUE_CHANNEL = "deal_aging_queue"
# The statuses a run ends in.
FINISHED = ("SUCCEEDED", "FAILED")
# A request whose worker died this many times ends FAILED instead of queueing again.
MAX_ATTEMPTS = 3
# The columns the runner relies on; when any is missing, the dbt macro completes the table.
REQUIRED_COLUMNS = frozenset(
    {
        "run_id",
        "tenant_id",
        "report_type",
        "generated_at",
        "period_start",
        "period_end",
        "input_params",
        "status",
        "finished_at",
        "error_message",
        "dbt_invocation_id",
        "attempts",
    }
)


@dataclass(frozen=True)
class Tables:
    """Where the report's tables are: the dbt profile's target schema (DEAL_AGING_SCHEMA)."""

    schema: str

    @classmethod
    def from_environment(cls) -> Tables:
        return cls(os.environ.get("DEAL_AGING_SCHEMA", "dyno_crm"))

    def ident(self, table: str) -> sql.Composed:
        return sql.SQL(".").join([sql.Identifier(self.schema), sql.Identifier(table)])

    @property
    def report_run(self) -> sql.Composed:
        return self.ident("report_run")

    @property
    def fact(self) -> sql.Composed:
        return self.ident("report_deal_aging_fact")


# The tables holding a run's rows under its run_id (the dbt macro deal_aging_run_keyed_tables).
RUN_KEYED_TABLES = ("report_deal_aging_fact", "report_deal_aging_deal")


def report_run_is_ready(conn: psycopg.Connection, tables: Tables) -> bool:
    columns = conn.execute(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = 'report_run'",
        (tables.schema,),
    ).fetchall()
    conn.commit()
    return {name for (name,) in columns} >= REQUIRED_COLUMNS


def liveness_key(run_id: sql.Composable) -> sql.Composed:
    """The advisory lock a runner or worker holds while it executes a run: its session dies with
    it, so `sweep` can tell a run whose executor is gone from one still being worked on."""
    return sql.SQL("hashtextextended({}::text, 0)").format(run_id)


def claim(conn: psycopg.Connection, run_id: UUID) -> None:
    acquired = conn.execute(
        sql.SQL("select pg_try_advisory_lock({})").format(liveness_key(sql.Literal(str(run_id))))
    ).fetchone()[0]
    conn.commit()
    if not acquired:
        raise BadInput(f"--run-id {run_id}: another runner is executing this run right now")


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
            raise BadInput(
                f"--run-id {run_id}: that run is a {existing[0]} run of tenant {existing[1]},"
                f" not a {REPORT_TYPE} run of tenant {request.tenant_id}"
            )
        values = {
            "run_id": run_id,
            "tenant_id": request.tenant_id,
            "report_type": REPORT_TYPE,
            "generated_at": generated_at,
            "period_start": params.period_start,
            "period_end": params.period_end,
            "input_params": Jsonb(params.input_params()),
        }
        statement = (
            "update {} set generated_at = %(generated_at)s, period_start = %(period_start)s,"
            " period_end = %(period_end)s, input_params = %(input_params)s,"
            " status = 'IN_PROGRESS', finished_at = null, error_message = null"
            " where run_id = %(run_id)s"
            if existing
            else "insert into {} (run_id, tenant_id, report_type, generated_at, period_start,"
            " period_end, input_params, status) values (%(run_id)s, %(tenant_id)s,"
            " %(report_type)s, %(generated_at)s, %(period_start)s, %(period_end)s,"
            " %(input_params)s, 'IN_PROGRESS')"
        )
        conn.execute(sql.SQL(statement).format(tables.report_run), values)


def mark_succeeded(
    conn: psycopg.Connection, tables: Tables, run_ids: list[UUID]
) -> dict[UUID, int]:
    """Flip the headers to SUCCEEDED; returns each run's fact row count."""
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "update {} set status = 'SUCCEEDED', finished_at = clock_timestamp(),"
                " error_message = null where run_id = any(%s)"
            ).format(tables.report_run),
            (run_ids,),
        )
        counts = dict(
            conn.execute(
                sql.SQL(
                    "select run_id, count(*) from {} where run_id = any(%s) group by run_id"
                ).format(tables.fact),
                (run_ids,),
            ).fetchall()
        )
    return {run_id: counts.get(run_id, 0) for run_id in run_ids}


def delete_rows(conn: psycopg.Connection, tables: Tables, run_ids: list[UUID]) -> None:
    for table in RUN_KEYED_TABLES:
        if table_exists(conn, tables, table):
            conn.execute(
                sql.SQL("delete from {} where run_id = any(%s)").format(tables.ident(table)),
                (run_ids,),
            )


def mark_failed(conn: psycopg.Connection, tables: Tables, run_ids: list[UUID], reason: str) -> None:
    """FAILED with the reason, and no rows left behind, in one transaction."""
    with conn.transaction():
        delete_rows(conn, tables, run_ids)
        conn.execute(
            sql.SQL(
                "update {} set status = 'FAILED', finished_at = clock_timestamp(),"
                " error_message = %s where run_id = any(%s)"
            ).format(tables.report_run),
            (reason, run_ids),
        )


def table_exists(conn: psycopg.Connection, tables: Tables, table: str) -> bool:
    return conn.execute(
        "select to_regclass(%s) is not null", (f'"{tables.schema}"."{table}"',)
    ).fetchone()[0]


def tenants(conn: psycopg.Connection, source_schema: str) -> list[UUID]:
    """Every tenant with a pipeline: the tenants the analysts' dbt path reports on too."""
    return [
        tenant_id
        for (tenant_id,) in conn.execute(
            sql.SQL("select distinct tenant_id from {} order by tenant_id").format(
                Tables(source_schema).ident("pipeline")
            )
        )
    ]


@dataclass(frozen=True)
class Swept:
    requeued: list[UUID]
    failed: list[UUID]


def sweep(
    conn: psycopg.Connection,
    tables: Tables,
    older_than_minutes: int,
    queued_only: bool = False,
) -> Swept:
    """Runs left IN_PROGRESS longer than the age whose executor is gone (nobody holds their
    liveness lock). A request a worker claimed from the queue goes back to it, up to
    MAX_ATTEMPTS claims; any other run is marked FAILED and loses its rows."""
    with conn.transaction():
        abandoned = conn.execute(
            sql.SQL(
                "select run_id, attempts from {} where report_type = %s"
                " and status = 'IN_PROGRESS'"
                " and generated_at < now() - make_interval(mins => %s)"
                " and (not %s or attempts is not null)"
                " and pg_try_advisory_xact_lock({})"
                " for update skip locked"
            ).format(tables.report_run, liveness_key(sql.Identifier("run_id"))),
            (REPORT_TYPE, older_than_minutes, queued_only),
        ).fetchall()
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
        conn.execute(sql.SQL("notify {}").format(sql.Identifier(QUEUE_CHANNEL)))


def list_runs(
    conn: psycopg.Connection,
    tables: Tables,
    tenant_id: UUID | None,
    status: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    fact_counts = (
        sql.SQL("(select count(*) from {} f where f.run_id = r.run_id)").format(tables.fact)
        if table_exists(conn, tables, "report_deal_aging_fact")
        else sql.SQL("0")
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL(
                "select r.run_id, r.tenant_id, r.status, r.generated_at, r.finished_at,"
                " r.input_params, r.error_message, {} as fact_rows from {} r"
                " where r.report_type = %(report_type)s"
                " and (%(tenant_id)s::uuid is null or r.tenant_id = %(tenant_id)s)"
                " and (%(status)s::text is null or r.status = %(status)s)"
                " order by r.generated_at desc limit %(limit)s"
            ).format(fact_counts, tables.report_run),
            {"report_type": REPORT_TYPE, "tenant_id": tenant_id, "status": status, "limit": limit},
        ).fetchall()


def get_run(conn: psycopg.Connection, tables: Tables, run_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL(
                "select run_id, tenant_id, report_type, status, generated_at, finished_at,"
                " period_start, period_end, input_params, error_message, dbt_invocation_id"
                " from {} where run_id = %s"
            ).format(tables.report_run),
            (run_id,),
        ).fetchone()


def run_facts(
    conn: psycopg.Connection, tables: Tables, source_schema: str, run_id: UUID
) -> list[dict[str, Any]]:
    """The run's fact rows, with pipeline and stage names from the CRM, in stage order."""
    return _named_run_rows(
        conn,
        tables,
        "report_deal_aging_fact",
        source_schema,
        run_id,
        extra_columns=sql.SQL(""),
        order_by=sql.SQL(
            "p.name, r.pipeline_id, s.display_order, s.name, r.stage_id,"
            " r.principal_type, r.principal_id"
        ),
    )


def run_deals(
    conn: psycopg.Connection, tables: Tables, source_schema: str, run_id: UUID
) -> list[dict[str, Any]]:
    """The run's at-risk deals, worst first: furthest past the limit that applies to them."""
    return _named_run_rows(
        conn,
        tables,
        "report_deal_aging_deal",
        source_schema,
        run_id,
        extra_columns=sql.SQL(
            ", greatest(r.days_in_stage - r.threshold_days,"
            " r.days_in_cycle - r.cycle_threshold_days) as days_past_limit"
        ),
        order_by=sql.SQL("days_past_limit desc, r.amount desc nulls last, r.deal_id"),
    )


def _named_run_rows(
    conn: psycopg.Connection,
    tables: Tables,
    table: str,
    source_schema: str,
    run_id: UUID,
    extra_columns: sql.SQL,
    order_by: sql.SQL,
) -> list[dict[str, Any]]:
    """A run's rows of one of its tables, with the pipeline and stage names the CRM has now."""
    if not table_exists(conn, tables, table):
        return []
    crm = Tables(source_schema)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL(
                "select r.*, p.name as pipeline_name, s.name as stage_name{}"
                " from {} r"
                " left join {} p on p.id = r.pipeline_id and p.tenant_id = r.tenant_id"
                " left join {} s on s.id = r.stage_id and s.tenant_id = r.tenant_id"
                " where r.run_id = %s order by {}"
            ).format(
                extra_columns,
                tables.ident(table),
                crm.ident("pipeline"),
                crm.ident("pipeline_stage"),
                order_by,
            ),
            (run_id,),
        ).fetchall()
