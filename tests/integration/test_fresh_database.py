"""Concurrency from a fresh database: runners and workers started at once on a database without
the report's tables all succeed; whoever comes first builds the tables, the others wait for it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from crm_data.generator import DatasetSpec, create_source_schema, load_dataset
from runner.dbt.project import PROJECT_DIR
from runner.domain.params import build_params
from runner.domain.runs import RunRequest
from runner.store.queue import submit
from runner.store.tables import SETUP_RELATIONS, Tables

from .runner_process import runner_env, start_runner, wait_until
from .support import connect, create_database, drop_database, server_env

RUNNERS = 16
REQUESTS = 50


@pytest.fixture
def fresh_env() -> Iterator[dict[str, str]]:
    """A database with the CRM's tables and data, and none of the report's."""
    name = create_database("deal_aging_fresh")
    try:
        with connect(name) as conn:
            create_source_schema(conn)
            load_dataset(conn, DatasetSpec(deals=600, tenants=3, seed=11))
            conn.commit()
        yield server_env() | {"PGDATABASE": name}
    finally:
        drop_database(name)


def _tenants(dbname: str) -> list[str]:
    with connect(dbname) as conn:
        return [str(t) for (t,) in conn.execute("select distinct tenant_id from dyno_crm.pipeline")]


def _statuses(dbname: str) -> list[str]:
    with connect(dbname) as conn:
        return [s for (s,) in conn.execute("select status from dyno_crm.report_run")]


def test_concurrent_runners_on_a_fresh_database_all_succeed(fresh_env):
    tenants = _tenants(fresh_env["PGDATABASE"])
    runners = [
        start_runner(
            fresh_env, "run", "--tenant-id", tenants[i % len(tenants)], "--threshold-days", str(i)
        )
        for i in range(RUNNERS)
    ]
    outcomes = [(runner.wait(timeout=300), runner.stderr.read()) for runner in runners]

    assert [code for code, _ in outcomes] == [0] * RUNNERS, [e for _, e in outcomes if e]
    assert _statuses(fresh_env["PGDATABASE"]) == ["SUCCEEDED"] * RUNNERS
    with connect(fresh_env["PGDATABASE"]) as conn:
        for relation in SETUP_RELATIONS:  # the dashboards' views too, for a runner-only team
            assert conn.execute("select to_regclass(%s)", (f"dyno_crm.{relation}",)).fetchone()[0]


def test_workers_started_at_once_on_a_fresh_database_serve_every_request(fresh_env, tmp_path):
    dbname = fresh_env["PGDATABASE"]
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "runner", "worker", "--poll-seconds", "0.2"],
            cwd=PROJECT_DIR,
            env=runner_env(fresh_env),
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for log in logs
    ]
    try:
        with connect(dbname, autocommit=True) as conn:
            wait_until(
                lambda: (
                    conn.execute("select to_regclass('dyno_crm.report_run')").fetchone()[0]
                    is not None
                ),
                timeout=180,
                what="a worker to build report_run",
            )
            tenants = _tenants(dbname)
            for i in range(REQUESTS):
                request = RunRequest(tenants[i % len(tenants)], build_params(threshold_days=str(i)))
                submit(conn, Tables("dyno_crm"), request)
        wait_until(
            lambda: _statuses(dbname).count("SUCCEEDED") == REQUESTS,
            timeout=240,
            what="every request to succeed",
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    assert _statuses(dbname) == ["SUCCEEDED"] * REQUESTS, [log.read_text() for log in logs]


CATALOG = """
select c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod),
       obj_description(c.oid, 'pg_class'), pg_get_viewdef(c.oid),
       (select array_agg(conname order by conname) from pg_constraint where conrelid = c.oid),
       (select array_agg(indexrelid::regclass::text order by 1) from pg_index where indrelid = c.oid)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where n.nspname = 'dyno_crm' and c.relkind in ('r', 'v')
order by 1, 3
"""


def _catalog(dbname: str) -> list[tuple]:
    with connect(dbname) as conn:
        return conn.execute(CATALOG).fetchall()


def test_setup_from_four_processes_then_again_changes_nothing(fresh_env):
    setups = [start_runner(fresh_env, "setup") for _ in range(4)]
    outcomes = [(setup.wait(timeout=300), setup.stderr.read()) for setup in setups]
    assert [code for code, _ in outcomes] == [0] * 4, [e for _, e in outcomes]
    first = _catalog(fresh_env["PGDATABASE"])
    assert {row[0] for row in first} >= {"report_run", *SETUP_RELATIONS}

    again = start_runner(fresh_env, "setup")
    assert again.wait(timeout=300) == 0, again.stderr.read()

    assert _catalog(fresh_env["PGDATABASE"]) == first
