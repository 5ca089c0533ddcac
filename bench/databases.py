"""The server the benchmark talks to and the databases it owns there.

Connection settings are the libpq variables, with the local defaults of the tests
(127.0.0.1:5432, user postgres). A database the benchmark builds records what it holds in a
table of its own, `public.bench_dataset`; a database is reused when that record equals what is
wanted, rebuilt otherwise, and never dropped unless it holds that record or no table at all.
"""

from __future__ import annotations

import json
import os
from typing import Any

import psycopg
from psycopg import sql

LIBPQ_DEFAULTS = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
RECORD_TABLE = "bench_dataset"


class NotABenchDatabase(Exception):
    """A database of that name exists and holds somebody else's tables."""


def server_env() -> dict[str, str]:
    """The libpq settings of the server, for this process and the children it starts."""
    env = {name: os.environ.get(name, default) for name, default in LIBPQ_DEFAULTS.items()}
    if "PGPASSWORD" in os.environ:
        env["PGPASSWORD"] = os.environ["PGPASSWORD"]
    return env


def connect(dbname: str, *, autocommit: bool = False) -> psycopg.Connection:
    env = server_env()
    return psycopg.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env.get("PGPASSWORD"),
        dbname=dbname,
        autocommit=autocommit,
        application_name="deal-aging-bench",
    )


def exists(name: str) -> bool:
    with connect("postgres", autocommit=True) as admin:
        row = admin.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
    return row is not None


def create(name: str) -> None:
    with connect("postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


def drop(name: str) -> None:
    """Drop a database the benchmark built (or an empty one); refuse anybody else's."""
    if not exists(name):
        return
    if recorded(name) is None and _has_tables(name):
        raise NotABenchDatabase(
            f"database {name} holds tables but no {RECORD_TABLE} record: not the benchmark's,"
            " so it is left alone; pick another --database"
        )
    with connect("postgres", autocommit=True) as admin:
        admin.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def recorded(name: str) -> dict[str, Any] | None:
    """What the database was built with, or None when it has no record."""
    with connect(name) as conn:
        if (
            conn.execute("select to_regclass(%s)", (f"public.{RECORD_TABLE}",)).fetchone()[0]
            is None
        ):
            return None
        row = conn.execute(f"select spec from public.{RECORD_TABLE}").fetchone()
    return None if row is None else row[0]


def record(conn: psycopg.Connection, document: dict[str, Any]) -> None:
    """Write the record, in the caller's transaction (the one that loaded the data)."""
    conn.execute(
        f"create table if not exists public.{RECORD_TABLE} ("
        " spec jsonb not null, built_at timestamptz not null default now())"
    )
    conn.execute(f"delete from public.{RECORD_TABLE}")
    conn.execute(
        f"insert into public.{RECORD_TABLE} (spec) values (%s::jsonb)", (json.dumps(document),)
    )


def _has_tables(name: str) -> bool:
    with connect(name) as conn:
        row = conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')"
        ).fetchone()
    return row[0] > 0
