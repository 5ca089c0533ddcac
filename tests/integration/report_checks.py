"""What the integration tests assert about report runs, shared by the dbt and runner tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from .support import FACT_TABLE, REFERENCE_QUERY, REPORT_RUN_TABLE

FACT_COLUMNS = (
    "pipeline_id, principal_type, principal_id, stage_id, threshold_days, cycle_threshold_days, "
    "at_risk_deal_count, at_risk_amount, avg_days_in_stage, median_days_in_stage, "
    "total_deal_count, total_amount, percent_at_risk"
)
ORDER = "pipeline_id, stage_id, principal_type, principal_id"


@dataclass(frozen=True)
class DatasetIds:
    """Ids picked from the generated dataset, to build filters that match real rows."""

    tenants: list[str]
    pipeline_id: str
    open_stage_id: str
    terminal_stage_id: str
    owner_user_id: str
    owner_group_id: str


def dataset_ids(db: psycopg.Connection) -> DatasetIds:
    tenants = [
        str(row[0])
        for row in db.execute(
            "select tenant_id from dyno_crm.deal group by 1 order by count(*) desc, 1"
        )
    ]
    big = tenants[0]

    def one(sql: str) -> str:
        row = db.execute(sql, (big,)).fetchone()
        assert row is not None, sql
        return str(row[0])

    return DatasetIds(
        tenants=tenants,
        pipeline_id=one(
            "select pipeline_id from dyno_crm.deal where tenant_id = %s group by 1 order by count(*) desc, 1 limit 1"
        ),
        open_stage_id=one(
            "select s.pipeline_stage_id from dyno_crm.deal_pipeline_stage_state s"
            " join dyno_crm.pipeline_stage p on p.id = s.pipeline_stage_id"
            " where s.tenant_id = %s and s.is_current and p.stage_state = 'IN_PROGRESS'"
            " group by 1 order by count(*) desc, 1 limit 1"
        ),
        terminal_stage_id=one(
            "select id from dyno_crm.pipeline_stage where tenant_id = %s"
            " and stage_state = 'DONE_SUCCESS' order by id limit 1"
        ),
        owner_user_id=one(
            "select owned_by_user_id from dyno_crm.deal where tenant_id = %s"
            " and owned_by_user_id is not null group by 1 order by count(*) desc, 1 limit 1"
        ),
        owner_group_id=one(
            "select owned_by_group_id from dyno_crm.deal where tenant_id = %s"
            " and owned_by_group_id is not null group by 1 order by count(*) desc, 1 limit 1"
        ),
    )


def runs_of_invocation(db: psycopg.Connection, invocation_id: str) -> list[dict[str, Any]]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            f"select * from {REPORT_RUN_TABLE} where dbt_invocation_id = %s order by tenant_id",
            (invocation_id,),
        ).fetchall()


def fact_rows(db: psycopg.Connection, run_id: Any) -> list[tuple]:
    return db.execute(
        f"select {FACT_COLUMNS} from {FACT_TABLE} where run_id = %s order by {ORDER}", (run_id,)
    ).fetchall()


def oracle_rows(db: psycopg.Connection, run: dict[str, Any]) -> list[tuple]:
    """The design's reference query for the run's parameters, stored through the fact table's
    column types (so rounding is the same), read back in the same order."""
    params = dict(run["input_params"])
    params["tenant_id"] = run["tenant_id"]
    params["now"] = run["generated_at"]
    with db.transaction():
        db.execute(f"create temp table oracle (like {FACT_TABLE}) on commit drop")
        db.execute(
            "alter table oracle alter run_id drop not null, alter tenant_id drop not null,"
            " alter snoozed_deal_count drop not null"
        )
        db.execute(f"insert into oracle ({FACT_COLUMNS}) {REFERENCE_QUERY}", params)
        return db.execute(f"select {FACT_COLUMNS} from oracle order by {ORDER}").fetchall()


def assert_run_matches_oracle(db: psycopg.Connection, run: dict[str, Any]) -> list[tuple]:
    facts = fact_rows(db, run["run_id"])
    assert facts == oracle_rows(db, run)
    return facts


def as_of(run: dict[str, Any]) -> datetime:
    return run["period_end"] or run["generated_at"]


def header(db: psycopg.Connection, run_id: Any) -> dict[str, Any] | None:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            f"select * from {REPORT_RUN_TABLE} where run_id = %s", (run_id,)
        ).fetchone()


def deal_rows(db: psycopg.Connection, run_id: Any) -> list[tuple]:
    """The run's deal list, every column but the run_id, in deal order."""
    return db.execute(
        "select to_jsonb(d) - 'run_id' from dyno_crm.report_deal_aging_deal d"
        " where run_id = %s order by deal_id",
        (run_id,),
    ).fetchall()
