"""report_deal_aging_latest: any number of concurrent `dbt run`s may rebuild it, and it shows each
tenant's latest SUCCEEDED run, never a newer run that is in progress or failed."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from dbt_common.invocation import get_invocation_id

from runner.dbt_project import PROJECT_DIR

from .report_checks import FACT_COLUMNS, ORDER, fact_rows, runs_of_invocation
from .runner_process import runner_env, wait_until
from .support import FACT_TABLE, REPORT_RUN_TABLE, Dbt, connect

LATEST_VIEW = "dyno_crm.report_deal_aging_latest"
CONCURRENT_BUILDS = 4
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")


@pytest.fixture(scope="module")
def runs(dbt: Dbt, database_env: dict[str, str]) -> Iterator[dict[UUID, UUID]]:
    """One real SUCCEEDED run per tenant, by tenant; the view is dropped after the module."""
    result = dbt.invoke(
        "run", "--select", "report_deal_aging_fact", dbt_vars={"threshold_days": 30}
    )
    assert result.success, result.exception
    with connect(database_env["PGDATABASE"], autocommit=True) as conn:
        yield {
            run["tenant_id"]: run["run_id"] for run in runs_of_invocation(conn, get_invocation_id())
        }
        conn.execute(f"drop view if exists {LATEST_VIEW}")


def test_concurrent_builds_all_succeed(runs, dbt, db, database_env, tmp_path):
    db.execute(f"drop view if exists {LATEST_VIEW}")
    # Every build reads the fact table; holding it makes them all wait, so they go at once.
    with connect(database_env["PGDATABASE"]) as gate:
        gate.execute(f"lock table {FACT_TABLE} in access exclusive mode")
        builds = [
            _start_build(dbt, database_env, tmp_path / f"build{n}")
            for n in range(CONCURRENT_BUILDS)
        ]
        try:
            wait_until(
                lambda: _sessions_waiting_on_locks(db) == CONCURRENT_BUILDS,
                timeout=180,
                what=f"{CONCURRENT_BUILDS} builds to wait for the fact table",
            )
        except AssertionError:
            for build in builds:
                build.kill()
            raise
    outcomes = [build.communicate(timeout=120) for build in builds]

    failures = [
        stdout for build, (stdout, _) in zip(builds, outcomes, strict=True) if build.returncode
    ]
    assert not failures, "\n\n".join(failures)
    relkind = db.execute("select relkind from pg_class where oid = %s::regclass", (LATEST_VIEW,))
    assert relkind.fetchone()[0] == "v"


def test_shows_the_latest_succeeded_run_of_each_tenant(runs, dbt, db):
    with_newer_runs, with_tied_runs, untouched = list(runs)
    newest_succeeded = uuid.uuid4()
    tied = sorted([uuid.uuid4(), uuid.uuid4()])
    # run_id: (tenant, hours after now, status, with a copy of the tenant's real facts)
    extra = {
        newest_succeeded: (with_newer_runs, 1, "SUCCEEDED", True),
        uuid.uuid4(): (with_newer_runs, 2, "FAILED", False),
        uuid.uuid4(): (with_newer_runs, 3, "IN_PROGRESS", True),
        tied[0]: (with_tied_runs, 1, "SUCCEEDED", True),
        tied[1]: (with_tied_runs, 1, "SUCCEEDED", True),
    }
    try:
        for run_id, (tenant_id, hours, status, with_facts) in extra.items():
            _add_run(db, run_id, tenant_id, hours, status, runs[tenant_id] if with_facts else None)
        result = dbt.invoke("run", "--select", "report_deal_aging_latest")
        assert result.success, result.exception

        expected = {
            with_newer_runs: newest_succeeded,
            with_tied_runs: tied[1],
            untouched: runs[untouched],
        }
        shown = dict(db.execute(f"select distinct tenant_id, run_id from {LATEST_VIEW}").fetchall())
        assert shown == expected
        for tenant_id, run_id in expected.items():
            assert _latest_rows(db, tenant_id) == fact_rows(db, run_id)
        nameless = db.execute(
            f"select count(*) from {LATEST_VIEW} where pipeline_name is null or stage_name is null"
        )
        assert nameless.fetchone()[0] == 0
    finally:
        # Their facts go with them (on delete cascade): later tests see the runs they made.
        db.execute(f"delete from {REPORT_RUN_TABLE} where run_id = any(%s)", (list(extra),))


def _start_build(dbt: Dbt, database_env: dict[str, str], scratch: Path) -> subprocess.Popen[str]:
    """`dbt run` of the view alone, as an analyst's shell runs it, with a target of its own."""
    return subprocess.Popen(
        [
            str(DBT_EXECUTABLE),
            "run",
            "--select",
            "report_deal_aging_latest",
            *dbt.project_args,
            # Given again, later: the last value wins.
            "--target-path",
            str(scratch / "target"),
            "--log-path",
            str(scratch / "logs"),
        ],
        cwd=PROJECT_DIR,
        env=runner_env(database_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _sessions_waiting_on_locks(db: psycopg.Connection) -> int:
    return db.execute(
        "select count(*) from pg_stat_activity where datname = current_database()"
        " and wait_event_type = 'Lock' and pid <> pg_backend_pid()"
    ).fetchone()[0]


def _add_run(
    db: psycopg.Connection,
    run_id: UUID,
    tenant_id: UUID,
    hours_from_now: int,
    status: str,
    facts_of: UUID | None,
) -> None:
    """A header newer than the real runs and, when facts_of is given, a copy of that run's facts."""
    with db.transaction():
        db.execute(
            f"insert into {REPORT_RUN_TABLE}"
            " (run_id, tenant_id, report_type, generated_at, input_params, status, finished_at)"
            " values (%(run_id)s, %(tenant_id)s, 'deal_aging', now() + make_interval(hours => %(hours)s),"
            " '{\"threshold_days\": 30}', %(status)s::text,"
            " case when %(status)s::text = 'IN_PROGRESS' then null else now() end)",
            {"run_id": run_id, "tenant_id": tenant_id, "hours": hours_from_now, "status": status},
        )
        if facts_of is not None:
            db.execute(
                f"create temp table copied on commit drop as"
                f" select * from {FACT_TABLE} where run_id = %s",
                (facts_of,),
            )
            db.execute("update copied set run_id = %s", (run_id,))
            db.execute(f"insert into {FACT_TABLE} select * from copied")


def _latest_rows(db: psycopg.Connection, tenant_id: UUID) -> list[tuple]:
    return db.execute(
        f"select {FACT_COLUMNS} from {LATEST_VIEW} where tenant_id = %s order by {ORDER}",
        (tenant_id,),
    ).fetchall()
