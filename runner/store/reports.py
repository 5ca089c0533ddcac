"""What `list` and `show` read: headers, facts and deal lists with the CRM's names."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from runner.domain.params import AGING_CALENDARS, SNOOZES, THRESHOLD_MODES
from runner.domain.runs import REPORT_TYPE
from runner.store.tables import Tables, table_exists

log = logging.getLogger(__name__)


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
    conn: psycopg.Connection,
    tables: Tables,
    source_schema: str,
    run_id: UUID,
    limit: int | None = None,
    snoozed: bool | None = None,
) -> list[dict[str, Any]]:
    """The run's listed deals, worst first: the at-risk ones furthest past the limit that applies
    to them, then the snoozed ones (only one kind when `snoozed` says which); the first `limit` of
    them when it is given."""
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
        order_by=sql.SQL("r.is_snoozed, days_past_limit desc, r.amount desc nulls last, r.deal_id"),
        limit=limit,
        snoozed=snoozed,
    )


def run_changes(
    conn: psycopg.Connection, tables: Tables, source_schema: str, run_id: UUID
) -> list[dict[str, Any]]:
    """The run's changes since its previous run: newly at risk, still at risk (longest first),
    then recovered, by reason."""
    return _named_run_rows(
        conn,
        tables,
        "report_deal_aging_change",
        source_schema,
        run_id,
        extra_columns=sql.SQL(""),
        order_by=sql.SQL(
            "array_position(array['NEWLY_AT_RISK', 'STILL_AT_RISK', 'RECOVERED'], r.change_type::text),"
            " r.first_flagged_at, r.recovery_reason, r.amount desc nulls last, r.deal_id"
        ),
    )


def _named_run_rows(
    conn: psycopg.Connection,
    tables: Tables,
    table: str,
    source_schema: str,
    run_id: UUID,
    extra_columns: sql.SQL,
    order_by: sql.SQL,
    limit: int | None = None,
    snoozed: bool | None = None,
) -> list[dict[str, Any]]:
    """A run's rows of one of its tables, with the pipeline and stage names the CRM has now; of
    the deal list, only its snoozed rows or only the others when `snoozed` says so."""
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
                " where r.run_id = %s{} order by {}{}"
            ).format(
                extra_columns,
                tables.ident(table),
                crm.ident("pipeline"),
                crm.ident("pipeline_stage"),
                sql.SQL("") if snoozed is None else sql.SQL(" and r.is_snoozed = %s"),
                order_by,
                sql.SQL("") if limit is None else sql.SQL(" limit {}").format(sql.Literal(limit)),
            ),
            (run_id,) if snoozed is None else (run_id, snoozed),
        ).fetchall()


def run_deals_worst(
    conn: psycopg.Connection, tables: Tables, source_schema: str, run_id: UUID, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The run's `limit` at-risk deals furthest past their limit (as `run_deals` orders them),
    and how many at-risk deals the run lists in all (its snoozed deals are not at risk)."""
    worst = run_deals(conn, tables, source_schema, run_id, limit, snoozed=False)
    if len(worst) < limit:
        return worst, len(worst)
    total = conn.execute(
        sql.SQL("select count(*) from {} where run_id = %s and not is_snoozed").format(
            tables.ident("report_deal_aging_deal")
        ),
        (run_id,),
    ).fetchone()
    return worst, total[0] if total else 0


# What makes two runs comparable (report_deal_aging_trend's rule): everything they were asked is
# the same, bar when. The periods are the header's columns, the rest its input_params.
# A parameter added later has its default in the headers written before it.
_COMPARABLE_PARAMS: tuple[tuple[str, str, str | None], ...] = (
    ("threshold_days", "integer", None),
    ("cycle_threshold_days", "integer", None),
    ("pipeline_id", "uuid", None),
    ("stage_id", "uuid", None),
    ("principal_type", "text", None),
    ("principal_id", "uuid", None),
    ("breakdown", "text", None),
    ("snoozes", "text", SNOOZES[0]),
    ("aging_calendar", "text", AGING_CALENDARS[0]),
    ("threshold_mode", "text", THRESHOLD_MODES[0]),
)


def earlier_comparable_runs(
    conn: psycopg.Connection, tables: Tables, run: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` SUCCEEDED runs of the run's tenant with the same parameters, generated
    before it (latest first), each with its totals over its fact rows."""
    if not table_exists(conn, tables, "report_deal_aging_fact"):
        return []
    same_params = sql.SQL(" and ").join(
        sql.SQL(
            "cast(coalesce(r.input_params ->> {key}, {default}) as {type}) is not distinct from"
            " cast(coalesce(%(params)s::jsonb ->> {key}, {default}) as {type})"
        ).format(key=sql.Literal(key), default=sql.Literal(default), type=sql.SQL(type_))
        for key, type_, default in _COMPARABLE_PARAMS
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL(
                "select r.run_id, r.generated_at, r.finished_at,"
                " coalesce(sum(f.total_deal_count), 0) as open_deals,"
                " coalesce(sum(f.at_risk_deal_count), 0) as at_risk_deals,"
                " coalesce(sum(f.at_risk_amount), 0) as at_risk_amount,"
                " coalesce(sum(f.total_amount), 0) as total_amount"
                " from {} r left join {} f on f.run_id = r.run_id"
                " where r.tenant_id = %(tenant_id)s and r.report_type = %(report_type)s"
                " and r.status = 'SUCCEEDED' and r.run_id <> %(run_id)s"
                " and (r.generated_at, r.run_id) < (%(generated_at)s, %(run_id)s)"
                " and r.period_start is not distinct from %(period_start)s"
                " and r.period_end is not distinct from %(period_end)s"
                " and {}"
                " group by r.run_id order by r.generated_at desc, r.run_id desc limit %(limit)s"
            ).format(tables.report_run, tables.fact, same_params),
            {
                "tenant_id": run["tenant_id"],
                "report_type": REPORT_TYPE,
                "run_id": run["run_id"],
                "generated_at": run["generated_at"],
                "period_start": run["period_start"],
                "period_end": run["period_end"],
                "params": Jsonb(run["input_params"] or {}),
                "limit": limit,
            },
        ).fetchall()
