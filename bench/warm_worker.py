"""Warm workers against the design's reference query: a request's cost through a worker that keeps
dbt loaded, and the throughput of two workers on the machine it runs on.

    python -m bench.warm_worker --database deal_aging_bench [--pairs 5] [--queue 200]

The database is the benchmark's big one (`python -m bench` builds it). Each pair alternates a
request through a warm worker (submitted from this process, timed from the submit to the moment
its header says SUCCEEDED) and the baseline (`python -m bench.baseline`, a fresh process).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

import psycopg

from bench.history import settle
from bench.scenarios import ensure_baseline_table
from runner.dbt.invocation import DbtSettings
from runner.domain.params import build_params
from runner.domain.runs import RunRequest
from runner.store.queue import submit
from runner.store.tables import Tables
from runner.usecases.execute import ensure_setup

PROJECT_DIR = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.005
TREND_WINDOW = 20  # requests averaged at each end of a worker's log


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_worker", description=__doc__)
    parser.add_argument("--database", default="deal_aging_bench")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--queue", type=int, default=200, help="requests for the throughput run")
    parser.add_argument("--threshold-days", default="30")
    return parser.parse_args(argv)


def environment(database: str) -> dict[str, str]:
    return os.environ | {"PGDATABASE": database, "DO_NOT_TRACK": "1"}


@contextmanager
def workers(database: str, count: int) -> Iterator[list[Path]]:
    logs = [Path(tempfile.mkstemp(prefix="worker-", suffix=".log")[1]) for _ in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "runner", "worker", "--poll-seconds", "1"],
            cwd=PROJECT_DIR,
            env=environment(database),
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for log in logs
    ]
    try:
        deadline = time.monotonic() + 120
        while not all("dbt loaded" in log.read_text() for log in logs):
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start: " + logs[0].read_text()[-500:])
            time.sleep(0.1)
        yield logs
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=120)


def request_through_worker(conn: psycopg.Connection, tenant: UUID, days: str) -> float:
    request = RunRequest(tenant, build_params(threshold_days=days))
    started = time.perf_counter()
    submit(conn, Tables.from_environment(), request)
    while True:
        status = conn.execute(
            "select status from dyno_crm.report_run where run_id = %s", (request.run_id,)
        ).fetchone()[0]
        conn.commit()
        if status == "SUCCEEDED":
            return time.perf_counter() - started
        if status == "FAILED":
            raise RuntimeError(f"run {request.run_id} failed")
        time.sleep(POLL_SECONDS)


def baseline(database: str, tenant: UUID, days: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.baseline",
            "--tenant-id",
            str(tenant),
            "--threshold-days",
            days,
        ],
        cwd=PROJECT_DIR,
        env=environment(database),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def tenants_by_size(conn: psycopg.Connection) -> tuple[UUID, UUID]:
    rows = conn.execute(
        "select tenant_id from dyno_crm.deal group by 1 order by count(*) desc"
    ).fetchall()
    return rows[0][0], rows[-1][0]


def pairs(
    conn: psycopg.Connection, database: str, tenant: UUID, days: str, count: int
) -> tuple[list[float], list[float]]:
    warm, raw = [], []
    request_through_worker(conn, tenant, days)  # the worker's first run pays for its caches
    ensure_baseline_table(database)  # a copy of the fact table, which that run made if missing
    settle(database)
    for _ in range(count):
        warm.append(request_through_worker(conn, tenant, days))
        raw.append(baseline(database, tenant, days))
    return warm, raw


def throughput(
    conn: psycopg.Connection, tenant: UUID, days: str, queued: int
) -> tuple[float, list[UUID]]:
    tables = Tables.from_environment()
    requests = [RunRequest(tenant, build_params(threshold_days=days)) for _ in range(queued)]
    started = time.perf_counter()
    for request in requests:
        submit(conn, tables, request)
    run_ids = [request.run_id for request in requests]
    while (
        conn.execute(
            "select count(*) from dyno_crm.report_run where run_id = any(%s) and status in"
            " ('SUCCEEDED', 'FAILED')",
            (run_ids,),
        ).fetchone()[0]
        < queued
    ):
        conn.commit()
        time.sleep(0.05)
    return time.perf_counter() - started, run_ids


def exactly_once(conn: psycopg.Connection, run_ids: list[UUID], logs: list[Path]) -> str:
    statuses = conn.execute(
        "select status, attempts, count(*) from dyno_crm.report_run where run_id = any(%s)"
        " group by 1, 2",
        (run_ids,),
    ).fetchall()
    executed = [
        line.split(" run ")[1].split()[0]
        for log in logs
        for line in log.read_text().splitlines()
        if " SUCCEEDED " in line or " FAILED " in line
    ]
    mine = [run_id for run_id in executed if UUID(run_id) in set(run_ids)]
    per_worker = [
        sum(1 for line in log.read_text().splitlines() if " SUCCEEDED " in line) for log in logs
    ]
    return (
        f"headers by (status, attempts): {statuses}; executions logged: {len(mine)},"
        f" distinct: {len(set(mine))}; per worker: {per_worker}"
    )


def dbt_seconds_trend(logs: list[Path], window: int) -> str:
    """Each worker's mean dbt time over its first and its last requests: a worker that keeps dbt
    loaded must not slow down as it serves (dbt-adapters' growing flag list once made it)."""
    trends = []
    for log in logs:
        seconds = [
            float(field.removeprefix("dbt=").removesuffix("s"))
            for line in log.read_text().splitlines()
            for field in line.split()
            if field.startswith("dbt=")
        ]
        if len(seconds) >= 2 * window:
            first, last = seconds[:window], seconds[-window:]
            trends.append(f"{statistics.mean(first):.3f} -> {statistics.mean(last):.3f} s")
    return ", ".join(trends) or "too few requests per worker"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(environment(args.database))
    print(f"load average before: {os.getloadavg()}")
    with psycopg.connect(dbname=args.database) as conn:
        big, small = tenants_by_size(conn)
        # a freshly built database has no report relations yet; `runner submit` builds them so too
        ensure_setup(conn, Tables.from_environment(), DbtSettings(), None)
        with workers(args.database, 1):
            for label, tenant in (("small", small), ("big", big)):
                warm, raw = pairs(conn, args.database, tenant, args.threshold_days, args.pairs)
                w, r = statistics.median(warm), statistics.median(raw)
                print(
                    f"{label} tenant {tenant}: warm worker {w:.3f} s (min {min(warm):.3f}),"
                    f" baseline {r:.3f} s (min {min(raw):.3f}); over the baseline {w - r:+.3f} s,"
                    f" ratio {w / r:.2f}x ({args.pairs} pairs, medians)"
                )
        settle(args.database)
        with workers(args.database, 2) as logs:
            seconds, run_ids = throughput(conn, small, args.threshold_days, args.queue)
            print(
                f"throughput, 2 workers, {args.queue} small-tenant requests: {seconds:.1f} s,"
                f" {args.queue / seconds:.2f} runs/s"
            )
            print("exactly once: " + exactly_once(conn, run_ids, logs))
            print(
                f"dbt time per request, first {TREND_WINDOW} -> last {TREND_WINDOW}, per worker: "
                + dbt_seconds_trend(logs, TREND_WINDOW)
            )
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
