"""Requests through a warm worker against the design's reference query: the night run
(`runner submit --all-tenants`, then wait) and one lone request of a small or the big tenant.

A request is timed from its submit to the moment its header (the last of them, for the night
run) says SUCCEEDED; the baseline is a fresh `python -m bench.baseline` process, as everywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from uuid import UUID

import psycopg

from bench import databases, history, queued
from bench.pairs import Side, measure
from bench.processes import run_child
from bench.scenarios import Row, Setting, Tenant, baseline_side
from bench.workers import WorkerProcess, workers

NIGHT_TARGET = 1.0  # the night run through a worker, against the raw per-tenant loop
BIG_TARGET = 1.0  # the big tenant's lone request, against the raw query
SMALL_MARGIN = 0.1  # seconds a small tenant's lone request may take over the raw query
NIGHT_TIMEOUT = 1800


@dataclass(frozen=True)
class Served:
    """A request served by a warm worker."""

    seconds: float  # from submit to SUCCEEDED
    max_rss_mib: float  # the worker's peak so far


def one_request(conn: psycopg.Connection, worker: WorkerProcess, tenant: UUID) -> Served:
    request = queued.request(tenant)
    started = time.perf_counter()
    queued.submit_all(conn, [request])
    finished = queued.wait_all(conn, [request.run_id], NIGHT_TIMEOUT)
    _succeeded(conn, [request.run_id])
    return Served(finished - started, worker.peak_rss_mib())


def night_run(s: Setting, conn: psycopg.Connection, worker: WorkerProcess) -> Served:
    """What a scheduler runs: `runner submit --all-tenants` (a fresh process), then every run it
    queued waited for."""
    argv = [s.sides.python, "-m", "runner", "submit", "--all-tenants", "--threshold-days", "30"]
    started = time.perf_counter()
    submitted = run_child(argv, env=s.sides.env(s.big_db), cwd=s.sides.runner_project).check()
    run_ids = [UUID(line) for line in submitted.stdout.split()]
    finished = queued.wait_all(conn, run_ids, NIGHT_TIMEOUT)
    _succeeded(conn, run_ids)
    return Served(finished - started, worker.peak_rss_mib())


def _succeeded(conn: psycopg.Connection, run_ids: list[UUID]) -> None:
    found = queued.statuses(conn, run_ids)
    if set(status for status, _ in found) != {"SUCCEEDED"}:
        raise RuntimeError(f"requests through the warm worker ended so: {found}")


def rows(s: Setting, night_key: str | None, request_key: str | None) -> list[Row]:
    """The night run (row `night_key`) and a lone request of the small and the big tenant (rows
    `request_key`), through one warm worker with the default batch size, against the baseline."""
    measured = []
    with (
        databases.connect(s.big_db) as conn,
        workers(s.sides, s.big_db, 1, s.logs_dir / "warm") as (worker,),
    ):
        if night_key:
            s.say(f"{night_key}: every tenant ({s.tenants}) through a warm worker vs baseline")
            pairs = measure(
                Side(
                    "warm worker",
                    lambda: night_run(s, conn, worker),
                    prepare=partial(history.truncate_runs, s.big_db),
                ),
                baseline_side(s, s.big_db, None),
                s.pairs,
                s.warmups,
                s.say,
            )
            measured.append(
                Row(
                    night_key,
                    f"every tenant ({s.tenants}) at night, warm worker",
                    pairs,
                    NIGHT_TARGET,
                )
            )
        if request_key:
            for label, tenant, target, margin in (
                ("small", s.small, None, SMALL_MARGIN),
                ("big", s.big, BIG_TARGET, None),
            ):
                measured.append(
                    _lone_request(s, conn, worker, request_key, label, tenant, target, margin)
                )
    return measured


def _lone_request(
    s: Setting,
    conn: psycopg.Connection,
    worker: WorkerProcess,
    key: str,
    label: str,
    tenant: Tenant,
    target: float | None,
    margin: float | None,
) -> Row:
    s.say(f"{key}: one request, {label} tenant ({tenant.deals:,} deals), warm worker vs baseline")
    pairs = measure(
        Side("warm worker", lambda: one_request(conn, worker, tenant.tenant_id)),
        baseline_side(s, s.big_db, tenant),
        s.pairs,
        max(1, s.warmups),  # a worker's first request pays for its caches
        s.say,
    )
    over = pairs.a_median - pairs.b_median
    return Row(
        key,
        f"one request, {label} ({tenant.deals:,} deals), warm worker",
        pairs,
        target,
        f"over the baseline {over:+.3f} s",
        margin,
    )
