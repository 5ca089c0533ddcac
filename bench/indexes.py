"""The source-index lever: the opt-in indexes of macros/source_indexes.sql, off or on.

On: `dbt run-operation deal_aging_create_source_indexes`, the way a DBA would create them.
Off: the benchmark drops every index of the source schema whose name the macro uses
(ix_deal_aging_*), so the CRM's tables are as the CRM ships them.
"""

from __future__ import annotations

from psycopg import sql

from bench import databases
from bench.processes import ChildRun
from bench.sides import Sides

PREFIX = "ix_deal_aging_"


def present(database: str, schema: str = "dyno_crm") -> list[tuple[str, str]]:
    """The macro's indexes in the database, with their sizes."""
    with databases.connect(database) as conn:
        return conn.execute(
            "select c.relname, pg_size_pretty(pg_relation_size(c.oid)) from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind = 'i' and n.nspname = %s and c.relname like %s order by 1",
            (schema, PREFIX + "%"),
        ).fetchall()


def drop(database: str, schema: str = "dyno_crm") -> None:
    names = [name for name, _ in present(database, schema)]
    with databases.connect(database, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("drop index {}").format(sql.Identifier(schema, name)))


def create(sides: Sides, database: str) -> ChildRun:
    return sides.operation(database, "run-operation", "deal_aging_create_source_indexes")
