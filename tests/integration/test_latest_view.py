"""report_deal_aging_latest: any number of concurrent `dbt run`s may rebuild it, and it shows each
tenant's latest SUCCEEDED run of the whole pipeline, never a newer run that is in progress, failed
or filtered."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from dbt_common.invocation import get_invocation_id
from psycopg.types.json import Jsonb

from runner.dbt.project import PROJECT_DIR

from .report_checks import FACT_COLUMNS, ORDER, DatasetIds, fact_rows, runs_of_invocation
from .runner_process import run_runner, runner_env, wait_until
from .support import FACT_TABLE, REPORT_RUN_TABLE, Dbt, connect

LATEST_VIEW = "dyno_crm.report_deal_aging_latest"
CONCURRENT_BUILDS = 4
# One filter or breakdown of a run each: any of them makes the run a partial picture.
FILTERS: dict[str, dict[str, Any]] = {
    "period_start": {"period_start": "2020-01-01T00:00:00+00:00"},
    "period_end": {"period_end": "2030-01-01T00:00:00+00:00"},
    "pipeline_id": {"pipeline_id": str(uuid.uuid4())},
    "stage_id": {"stage_id": str(uuid.uuid4())},
    "principal_type": {"principal_type": "USER"},
    "principal_id": {"principal_id": str(uuid.uuid4())},
    "breakdown": {"breakdown": "owner"},
}
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")


@pytest.fixture(scope="module")
def runs(dbt: Dbt, database_env: dict[str, str]) -> Iterator[dict[UUID, UUID]]:
    """One real SUCCEEDED run per tenant, by tenant; the view is dropped after the module."""
    result = dbt.invoke(
        "run",
        "--select",
        "report_deal_aging_fact",
        "report_deal_aging_deal",
        dbt_vars={"threshold_days": 30},
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


def test_a_filtered_run_never_replaces_the_tenants_picture(runs, dbt, db):
    result = dbt.invoke("run", "--select", "report_deal_aging_latest")
    assert result.success, result.exception
    tenant_id = next(iter(runs))
    for name, filters in FILTERS.items():
        filtered = uuid.uuid4()
        try:
            _add_run(db, filtered, tenant_id, 1, "SUCCEEDED", runs[tenant_id], filters)

            shown = db.execute(
                f"select distinct run_id from {LATEST_VIEW} where tenant_id = %s", (tenant_id,)
            ).fetchall()
            assert shown == [(runs[tenant_id],)], f"a newer run filtered by {name} shows"
        finally:
            db.execute(f"delete from {REPORT_RUN_TABLE} where run_id = %s", (filtered,))


def test_a_runner_run_for_one_user_leaves_the_tenants_picture(
    runs, dbt, db, database_env, ids: DatasetIds
):
    tenant_id = UUID(ids.tenants[0])
    result = dbt.invoke("run", "--select", "report_deal_aging_latest")
    assert result.success, result.exception
    before = _latest_rows(db, tenant_id)
    done = run_runner(
        database_env,
        "run",
        "--tenant-id",
        str(tenant_id),
        "--threshold-days",
        "30",
        "--principal-type",
        "USER",
        "--principal-id",
        ids.owner_user_id,
    )
    assert done.returncode == 0, done.stderr
    one_user = UUID(done.stdout.splitlines()[-1])
    try:
        assert fact_rows(db, one_user), "the user's run has rows of its own"

        shown = db.execute(
            f"select distinct run_id from {LATEST_VIEW} where tenant_id = %s", (tenant_id,)
        ).fetchall()
        assert shown == [(runs[tenant_id],)]
        assert _latest_rows(db, tenant_id) == before
    finally:
        db.execute(f"delete from {REPORT_RUN_TABLE} where run_id = %s", (one_user,))


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
    filters: dict[str, Any] | None = None,
) -> None:
    """A header newer than the real runs and, when facts_of is given, a copy of that run's facts.
    Filters go in input_params, and the period bounds in their columns too, as the runner writes
    them."""
    filters = filters or {}
    with db.transaction():
        db.execute(
            f"insert into {REPORT_RUN_TABLE}"
            " (run_id, tenant_id, report_type, generated_at, period_start, period_end,"
            " input_params, status, finished_at)"
            " values (%(run_id)s, %(tenant_id)s, 'deal_aging', now() + make_interval(hours => %(hours)s),"
            " %(period_start)s, %(period_end)s, %(input_params)s, %(status)s::text,"
            " case when %(status)s::text = 'IN_PROGRESS' then null else now() end)",
            {
                "run_id": run_id,
                "tenant_id": tenant_id,
                "hours": hours_from_now,
                "period_start": filters.get("period_start"),
                "period_end": filters.get("period_end"),
                "input_params": Jsonb({"threshold_days": 30} | filters),
                "status": status,
            },
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
