"""`python -m runner` as orchestrators run it: a process of its own, against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg

from runner.dbt.project import PROJECT_DIR

from .support import connect


def runner_env(database_env: dict[str, str], **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DBT_", "DEAL_AGING_"))}
    return env | database_env | {"DO_NOT_TRACK": "1"} | overrides


def run_runner(
    database_env: dict[str, str], *args: str, timeout: float = 180, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=PROJECT_DIR,
        env=runner_env(database_env, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_runner(database_env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *args],
        cwd=PROJECT_DIR,
        env=runner_env(database_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def block_deals(dbname: str) -> psycopg.Connection:
    """A transaction holding the deal table, so a run's query waits until the caller lets go."""
    blocker = connect(dbname, application_name="pytest-db")
    blocker.execute("lock table dyno_crm.deal in access exclusive mode")
    return blocker


def blocked_on_lock(db: psycopg.Connection) -> bool:
    """True once some other session waits for a lock: a runner's dbt query stuck behind ours."""
    return db.execute(
        "select count(*) > 0 from pg_stat_activity where datname = current_database()"
        " and wait_event_type = 'Lock' and pid <> pg_backend_pid()"
    ).fetchone()[0]
