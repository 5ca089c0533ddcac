"""The baseline: the design's reference query, run with psycopg in a fresh process.

    python -m bench.baseline (--tenant-id UUID | --all-tenants) --threshold-days N

For each tenant it runs tests/reference/seed_report_query.sql (as of now) and inserts the rows
into a scratch copy of the fact table (`bench_baseline_fact`, created by the benchmark with the
fact table's columns, types, constraints and indexes), under a new run_id, one transaction per
tenant. Connection settings are the libpq variables, as for the runner. It imports nothing but
psycopg, as a plain service running the reference query would.
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

REFERENCE_QUERY = Path(__file__).resolve().parent.parent / "tests/reference/seed_report_query.sql"
TABLE = "bench_baseline_fact"
COLUMNS = (
    "run_id",
    "tenant_id",
    "pipeline_id",
    "principal_type",
    "principal_id",
    "stage_id",
    "threshold_days",
    "cycle_threshold_days",
    "at_risk_deal_count",
    "at_risk_amount",
    "avg_days_in_stage",
    "median_days_in_stage",
    "total_deal_count",
    "total_amount",
    "percent_at_risk",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--tenant-id", type=uuid.UUID)
    scope.add_argument("--all-tenants", action="store_true")
    parser.add_argument("--threshold-days", type=int, required=True)
    parser.add_argument("--schema", default="dyno_crm", help="schema of bench_baseline_fact")
    return parser.parse_args(argv)


def tenants(conn: psycopg.Connection) -> list[uuid.UUID]:
    """Every tenant with a pipeline, as the runner's --all-tenants finds them."""
    rows = conn.execute("select distinct tenant_id from dyno_crm.pipeline order by tenant_id")
    return [tenant_id for (tenant_id,) in rows]


def reference_params(tenant_id: uuid.UUID, threshold_days: int = 30) -> dict[str, object]:
    """The reference query's placeholders for a plain run of one tenant, as of now."""
    return {
        "tenant_id": tenant_id,
        "threshold_days": threshold_days,
        "cycle_threshold_days": None,
        "period_start": None,
        "period_end": None,
        "pipeline_id": None,
        "principal_type": None,
        "principal_id": None,
        "stage_id": None,
        "now": datetime.now(UTC),
    }


def run_tenant(
    conn: psycopg.Connection, query: str, insert: sql.Composed, tenant_id: uuid.UUID, days: int
) -> int:
    params = reference_params(tenant_id, days)
    run_id = uuid.uuid4()
    with conn.transaction():
        rows = conn.execute(query, params).fetchall()
        with conn.cursor() as cur:
            cur.executemany(insert, [(run_id, tenant_id, *row) for row in rows])
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    query = REFERENCE_QUERY.read_text()
    insert = sql.SQL("insert into {} ({}) values ({})").format(
        sql.Identifier(args.schema, TABLE),
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        sql.SQL(", ").join([sql.Placeholder()] * len(COLUMNS)),
    )
    with psycopg.connect("", application_name="deal-aging-bench-baseline") as conn:
        scope = tenants(conn) if args.all_tenants else [args.tenant_id]
        rows = sum(run_tenant(conn, query, insert, t, args.threshold_days) for t in scope)
    print(f"{len(scope)} tenant(s), {rows} fact rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
