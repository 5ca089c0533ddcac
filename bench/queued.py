"""Requests for the warm workers, made and followed from the benchmark's own process: varied
parameters over a set of tenants, queued with the runner's own `submit`, their headers read
back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import psycopg

from runner.domain.params import build_params
from runner.domain.runs import RunRequest
from runner.store.queue import submit
from runner.store.tables import Tables

# A dashboard's thresholds differ per team: neighbouring requests of a batch rarely share them.
THRESHOLDS = (7, 14, 30, 45, 60, 90)
CYCLE_THRESHOLDS = (None, 180, 365)
POLL_SECONDS = 0.005
TABLES = Tables("dyno_crm")  # the workers' (bench/sides.py drops DEAL_AGING_SCHEMA)


def request(
    tenant: UUID, threshold: int = 30, cycle: int | None = None, period_end: datetime | None = None
) -> RunRequest:
    return RunRequest(
        tenant,
        build_params(
            threshold_days=str(threshold),
            cycle_threshold_days=None if cycle is None else str(cycle),
            period_end=None if period_end is None else period_end.isoformat(),
        ),
    )


def varied(
    tenants: Sequence[UUID], count: int, period_end: datetime | None = None
) -> list[RunRequest]:
    """`count` requests, round-robin over the tenants, over every pair of thresholds."""
    return [
        request(
            tenants[i % len(tenants)],
            THRESHOLDS[i % len(THRESHOLDS)],
            CYCLE_THRESHOLDS[i // len(THRESHOLDS) % len(CYCLE_THRESHOLDS)],
            period_end,
        )
        for i in range(count)
    ]


def submit_all(conn: psycopg.Connection, requests: Sequence[RunRequest]) -> None:
    """Queue them in one transaction: the workers see the whole queue at once."""
    with conn.transaction():
        for each in requests:
            submit(conn, TABLES, each)


def finished(conn: psycopg.Connection, run_ids: Sequence[UUID]) -> dict[UUID, str]:
    """The runs among `run_ids` that are SUCCEEDED or FAILED, with their status."""
    rows = conn.execute(
        "select run_id, status from dyno_crm.report_run where run_id = any(%s)"
        " and status in ('SUCCEEDED', 'FAILED')",
        (list(run_ids),),
    ).fetchall()
    conn.commit()
    return dict(rows)


def wait_all(conn: psycopg.Connection, run_ids: Sequence[UUID], timeout: float) -> float:
    """Block until every run has finished; time.perf_counter() when the last was seen so."""
    deadline = time.monotonic() + timeout
    while len(finished(conn, run_ids)) < len(run_ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(run_ids)} request(s) not finished within {timeout:g} s")
        time.sleep(POLL_SECONDS)
    return time.perf_counter()


def statuses(conn: psycopg.Connection, run_ids: Sequence[UUID]) -> dict[tuple[str, int], int]:
    """How many of the runs have each (status, attempts)."""
    rows = conn.execute(
        "select status, attempts, count(*) from dyno_crm.report_run where run_id = any(%s)"
        " group by 1, 2 order by 1, 2",
        (list(run_ids),),
    ).fetchall()
    conn.commit()
    return {(status, attempts): n for status, attempts, n in rows}


def drain_seconds(conn: psycopg.Connection, run_ids: Sequence[UUID]) -> float:
    """From the first claim to the last run finished, by the server's clock: the workers' own
    pace, whatever the benchmark's polling."""
    seconds = conn.execute(
        "select extract(epoch from max(finished_at) - min(generated_at))"
        " from dyno_crm.report_run where run_id = any(%s)",
        (list(run_ids),),
    ).fetchone()[0]
    conn.commit()
    return float(seconds)
