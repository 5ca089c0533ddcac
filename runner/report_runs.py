"""The report_run headers and their facts, as the runner reads and writes them (psycopg 3,
bound parameters). The table's one definition is the dbt macro deal_aging_ensure_report_run."""

from __future__ import annotations

import logging
import os
import time
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

from runner.dbt_project import DBT_QUERY_COMMENT_PREFIX
from runner.errors import BadInput, one_line

log = logging.getLogger(__name__)

REPORT_TYPE = "deal_aging"
# The tables holding a run's rows under its run_id (the dbt macro deal_aging_run_keyed_tables).
RUN_KEYED_TABLES = ("report_deal_aging_fact", "report_deal_aging_deal")
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
        "executor",
    }
)


@dataclass(frozen=True)
class Tables:
    """Where the report's tables are: the dbt profile's target schema (DEAL_AGING_SCHEMA)."""

    schema: str

    @classmethod
    def from_environment(cls) -> Tables:
        from runner.params import parse_schema_name

        # dbt quotes the profile's schema into its SQL without escaping it: refuse before any run.
        schema = os.environ.get("DEAL_AGING_SCHEMA", "dyno_crm")
        return cls(parse_schema_name("DEAL_AGING_SCHEMA", schema))

    def ident(self, table: str) -> sql.Composed:
        return sql.SQL(".").join([sql.Identifier(self.schema), sql.Identifier(table)])

    @property
    def report_run(self) -> sql.Composed:
        return self.ident("report_run")

    @property
    def fact(self) -> sql.Composed:
        return self.ident("report_deal_aging_fact")


# Everything the setup builds besides report_run: the run-keyed tables and the dashboards' views.
SETUP_RELATIONS = (*RUN_KEYED_TABLES, "report_deal_aging_latest", "report_deal_aging_trend")
# Concurrent setups take turns on this lock.
SETUP_LOCK = "deal_aging.setup"


def setup_is_complete(conn: psycopg.Connection, tables: Tables) -> bool:
    """report_run has every column the runner needs and every relation of the report exists."""
    columns = conn.execute(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = 'report_run'",
        (tables.schema,),
    ).fetchall()
    relations = [table_exists(conn, tables, name) for name in SETUP_RELATIONS]
    return {name for (name,) in columns} >= REQUIRED_COLUMNS and all(relations)


def take_setup_lock(conn: psycopg.Connection) -> None:
    """Held until the session ends or the caller commits: one setup at a time per database."""
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (SETUP_LOCK,))


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
        succeeded = [run_id for run_id, (status, _) in headers.items() if status == "SUCCEEDED"]
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
            *headers.get(run_id, ("FAILED", "its header was deleted")),
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


def table_exists(conn: psycopg.Connection, tables: Tables, table: str) -> bool:
    return conn.execute(  # type: ignore[index]
        "select to_regclass(%s) is not null", (f'"{tables.schema}"."{table}"',)
    ).fetchone()[0]


CRM_TABLES = ("pipeline", "pipeline_stage", "deal", "deal_pipeline_stage_state")


def has_crm_tables(conn: psycopg.Connection, source_schema: str) -> bool:
    crm = Tables(source_schema)
    found = all(table_exists(conn, crm, table) for table in CRM_TABLES)
    conn.commit()
    return found


def has_tenant(conn: psycopg.Connection, source_schema: str, tenant_id: UUID) -> bool:
    """A tenant exists for the report when it has a pipeline, as for the analysts' dbt path."""
    found = conn.execute(  # type: ignore[index]
        sql.SQL("select exists (select 1 from {} where tenant_id = %s)").format(
            Tables(source_schema).ident("pipeline")
        ),
        (tenant_id,),
    ).fetchone()[0]
    conn.commit()
    return bool(found)


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
