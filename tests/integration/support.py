"""Plumbing of the integration tests: the server under test, scratch databases, real dbt."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import yaml
from dbt.cli.main import dbtRunner, dbtRunnerResult

from runner.dbt.project import PROJECT_DIR
from runner.store.tables import Tables, table_exists

LIBPQ_DEFAULTS = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
REFERENCE_QUERY = (PROJECT_DIR / "tests" / "reference" / "seed_report_query.sql").read_text()
FACT_TABLE = "dyno_crm.report_deal_aging_fact"
DEAL_TABLE = "dyno_crm.report_deal_aging_deal"
REPORT_RUN_TABLE = "dyno_crm.report_run"
# The optional tables `runner setup --optional-tables` makes in the report schema.
OPTIONAL_TABLES = (
    "deal_aging_stage_threshold",
    "deal_aging_snooze",
    "deal_aging_tenant_calendar",
    "deal_aging_holiday",
)


def row_counts(db: psycopg.Connection) -> tuple[int, ...]:
    """Rows of the headers and of every run-keyed table: unchanged when nothing was written."""
    return tuple(
        db.execute(f"select count(*) from {table}").fetchone()[0]
        for table in (REPORT_RUN_TABLE, FACT_TABLE, DEAL_TABLE)
    )


def server_env() -> dict[str, str]:
    """The libpq settings of the server under test, with the local defaults."""
    env = {name: os.environ.get(name, default) for name, default in LIBPQ_DEFAULTS.items()}
    if "PGPASSWORD" in os.environ:
        env["PGPASSWORD"] = os.environ["PGPASSWORD"]
    return env


def connect(dbname: str, **kwargs: Any) -> psycopg.Connection:
    env = server_env()
    return psycopg.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env.get("PGPASSWORD"),
        dbname=dbname,
        **kwargs,
    )


def create_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with connect("postgres", autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    return name


def drop_database(name: str) -> None:
    with connect("postgres", autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


@dataclass
class Dbt:
    """Real dbt, invoked in-process against the test database, as an analyst would from the CLI."""

    project_args: list[str]

    def invoke(self, *args: str, dbt_vars: dict[str, Any] | None = None) -> dbtRunnerResult:
        command = [*args, *self.project_args, "--quiet"]
        if dbt_vars is not None:
            command += ["--vars", yaml.safe_dump(dbt_vars, default_flow_style=True)]
        return dbtRunner().invoke(command)

    def run(self, dbt_vars: dict[str, Any] | None = None) -> dbtRunnerResult:
        return self.invoke("run", dbt_vars=dbt_vars)


def report_table_exists(db: psycopg.Connection, table: str) -> bool:
    return table_exists(db, Tables("dyno_crm"), table)
