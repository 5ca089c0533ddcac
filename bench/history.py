"""Earlier runs, synthesized: N copies of one real run, as real rows of the report's tables.

The template is a run the runner made in the same database; each copy gets its own run_id and
dbt_invocation_id, an hour earlier than the one before, status SUCCEEDED, and a copy of every row
the template has in each table keyed by run_id (the facts, the deal list, whatever else the
project grows), all with INSERT ... SELECT over generate_series. The tables are then vacuumed
and analyzed, as autovacuum would leave them.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg import sql

from bench import databases

REPORT_RUN = "report_run"
SKIP = frozenset({REPORT_RUN, "bench_baseline_fact"})


@dataclass(frozen=True)
class History:
    runs: int
    rows: dict[str, int]  # per table keyed by run_id, after the synthesis


def run_tables(conn: psycopg.Connection, schema: str) -> list[str]:
    """Base tables of the report schema keyed by run_id, report_run aside."""
    rows = conn.execute(
        "select c.table_name from information_schema.columns c"
        " join information_schema.tables t using (table_schema, table_name)"
        " where c.table_schema = %s and c.column_name = 'run_id' and t.table_type = 'BASE TABLE'"
        " order by 1",
        (schema,),
    ).fetchall()
    return [name for (name,) in rows if name not in SKIP]


def column_names(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = %s and is_generated = 'NEVER'"
        " order by ordinal_position",
        (schema, table),
    ).fetchall()
    return [name for (name,) in rows]


def synthesize(database: str, runs: int, template: UUID, schema: str = "dyno_crm") -> History:
    overrides = {
        "run_id": sql.SQL("s.run_id"),
        "dbt_invocation_id": sql.SQL("s.invocation_id"),
        "status": sql.SQL("'SUCCEEDED'"),
        "error_message": sql.SQL("null"),
        "generated_at": sql.SQL("x.generated_at - s.n * interval '1 hour'"),
        "finished_at": sql.SQL("x.finished_at - s.n * interval '1 hour'"),
    }
    with databases.connect(database) as conn:
        tables = [REPORT_RUN, *run_tables(conn, schema)]
        conn.execute(
            "create temp table bench_synthetic on commit drop as select gen_random_uuid() as run_id,"
            " gen_random_uuid() as invocation_id, n from generate_series(1, %s) n",
            (runs,),
        )
        for table in tables:
            columns = column_names(conn, schema, table)
            values = [
                overrides.get(c, sql.SQL("x.{}").format(sql.Identifier(c)))
                if table == REPORT_RUN or c == "run_id"
                else sql.SQL("x.{}").format(sql.Identifier(c))
                for c in columns
            ]
            conn.execute(
                sql.SQL(
                    "insert into {} ({}) select {} from bench_synthetic s cross join {} x"
                    " where x.run_id = %s"
                ).format(
                    sql.Identifier(schema, table),
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join(values),
                    sql.Identifier(schema, table),
                ),
                (template,),
            )
        conn.commit()
    settle(database, schema)
    with databases.connect(database) as conn:
        counts = {}
        for table in tables:
            query = sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
            counts[table] = conn.execute(query).fetchone()[0]
    return History(runs=runs, rows=counts)


def settle(database: str, schema: str = "dyno_crm") -> None:
    """Vacuum and analyze report_run and the tables keyed by run_id, as autovacuum keeps them on
    a live server. A server may run with autovacuum off, and a never-analyzed report_run once led
    the planner to read a tenant's whole history once per deal (docs/performance.md,
    "Statistics")."""
    with databases.connect(database, autocommit=True) as conn:
        for table in [REPORT_RUN, *run_tables(conn, schema)]:
            conn.execute(sql.SQL("vacuum (analyze) {}").format(sql.Identifier(schema, table)))


def truncate_runs(database: str, schema: str = "dyno_crm") -> None:
    """Empty report_run and every table keyed by run_id: a database that has seen no run."""
    with databases.connect(database) as conn:
        exists = conn.execute("select to_regclass(%s)", (f"{schema}.{REPORT_RUN}",)).fetchone()[0]
        if exists is None:
            return
        tables = [REPORT_RUN, *run_tables(conn, schema)]
        conn.execute(
            sql.SQL("truncate {}").format(
                sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)
            )
        )
        conn.commit()
