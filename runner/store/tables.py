"""Where the report's tables are, and whether the report and the CRM are set up."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg import sql

from runner.domain.params import parse_schema_name
from runner.domain.runs import RUN_KEYED_TABLES
from runner.domain.vocabulary import DEFAULT_SOURCE_SCHEMA, migration_versions

log = logging.getLogger(__name__)

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
        # dbt quotes the profile's schema into its SQL without escaping it: refuse before any run.
        schema = os.environ.get("DEAL_AGING_SCHEMA", DEFAULT_SOURCE_SCHEMA)
        return cls(parse_schema_name("DEAL_AGING_SCHEMA", schema))

    def ident(self, table: str) -> sql.Composed:
        return sql.SQL(".").join([sql.Identifier(self.schema), sql.Identifier(table)])

    @property
    def report_run(self) -> sql.Composed:
        return self.ident("report_run")

    @property
    def fact(self) -> sql.Composed:
        return self.ident("report_deal_aging_fact")


def table_exists(conn: psycopg.Connection, tables: Tables, table: str) -> bool:
    return conn.execute(  # type: ignore[index]
        "select to_regclass(%s) is not null", (f'"{tables.schema}"."{table}"',)
    ).fetchone()[0]


# Everything the setup builds besides report_run: the run-keyed tables and the views.
SETUP_RELATIONS = (
    *RUN_KEYED_TABLES,
    "report_deal_aging_latest",
    "report_deal_aging_trend",
    "report_deal_aging_change_counts",
    "report_deal_aging_stage_limits",
)

# Concurrent setups take turns on this lock.
SETUP_LOCK = "deal_aging.setup"
# Where the setup records the migrations it has applied (macros/migrations.sql).
MIGRATIONS = "deal_aging_migration"


def setup_is_complete(conn: psycopg.Connection, tables: Tables) -> bool:
    """Every migration is applied, report_run has every column the runner needs, and every
    relation of the report exists."""
    columns = conn.execute(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = 'report_run'",
        (tables.schema,),
    ).fetchall()
    relations = [table_exists(conn, tables, name) for name in (*SETUP_RELATIONS, MIGRATIONS)]
    if not all(relations):
        return False
    applied = {
        version
        for (version,) in conn.execute(
            sql.SQL("select version from {}").format(tables.ident(MIGRATIONS))
        )
    }
    return (
        applied >= set(migration_versions()) and {name for (name,) in columns} >= REQUIRED_COLUMNS
    )


def take_setup_lock(conn: psycopg.Connection) -> None:
    """Held until the session ends or the caller commits: one setup at a time per database."""
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (SETUP_LOCK,))


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
