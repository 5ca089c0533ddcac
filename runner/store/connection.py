"""Connections to PostgreSQL from the libpq variables, the same settings dbt's profile reads."""

from __future__ import annotations

import os

import psycopg

from runner.domain.errors import DatabaseUnreachable, one_line
from runner.domain.timeouts import Timeouts

# The profile's defaults (profiles.example.yml), so the runner and dbt reach the same server.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = "5432"
CONNECT_TIMEOUT_SECONDS = 10


def server_address() -> str:
    return f"{os.environ.get('PGHOST', DEFAULT_HOST)}:{os.environ.get('PGPORT', DEFAULT_PORT)}"


def connect(
    *,
    autocommit: bool = False,
    application_name: str = "deal-aging-runner",
    timeouts: Timeouts | None = None,
) -> psycopg.Connection:
    """A connection; libpq reads PGUSER, PGPASSWORD, PGDATABASE and the rest from the env. Its
    lock and statement timeouts are the run's, after any PGOPTIONS of the caller's."""
    bounds = (timeouts or Timeouts.defaults()).connection_options()
    try:
        return psycopg.connect(
            host=os.environ.get("PGHOST", DEFAULT_HOST),
            port=os.environ.get("PGPORT", DEFAULT_PORT),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=application_name,
            autocommit=autocommit,
            options=f"{os.environ.get('PGOPTIONS', '')} {bounds}".strip(),
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnreachable(
            f"cannot connect to PostgreSQL at {server_address()}: {one_line(str(exc), 300)}"
        ) from None
