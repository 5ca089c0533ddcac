"""Per-stage limits learned from history: the report_deal_aging_stage_limits view, and the
optional per-stage thresholds table they can fill."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from runner.store.tables import Tables

LIMITS_VIEW = "report_deal_aging_stage_limits"
STAGE_THRESHOLDS = "deal_aging_stage_threshold"


def stage_limits(conn: psycopg.Connection, tables: Tables, tenant_id: UUID) -> list[dict[str, Any]]:
    """The tenant's stages with completed visits in the last 365 days, in pipeline and stage order:
    how many, their 50th, 75th and 90th percentile days, and the limits learned from them."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL(
                "select * from {} where tenant_id = %s"
                " order by pipeline_id, stage_display_order, stage_name, stage_id"
            ).format(tables.ident(LIMITS_VIEW)),
            (tenant_id,),
        ).fetchall()


def write_stage_thresholds(
    conn: psycopg.Connection, tables: Tables, tenant_id: UUID, limits: dict[UUID, int]
) -> None:
    """Set each stage's own limit, replacing the one it had; other stages keep theirs."""
    with conn.transaction():
        for stage_id, days in limits.items():
            conn.execute(
                sql.SQL(
                    "insert into {} (tenant_id, pipeline_stage_id, threshold_days)"
                    " values (%s, %s, %s) on conflict (tenant_id, pipeline_stage_id)"
                    " do update set threshold_days = excluded.threshold_days"
                ).format(tables.ident(STAGE_THRESHOLDS)),
                (tenant_id, stage_id, days),
            )
