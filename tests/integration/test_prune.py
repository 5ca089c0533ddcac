"""`python -m runner prune`: old finished runs go with their rows; each tenant's latest SUCCEEDED
runs of the whole pipeline (what the dashboards show), and every run not finished, stay."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .report_checks import DatasetIds, fact_rows, header
from .runner_process import run_runner
from .support import DEAL_TABLE, REPORT_RUN_TABLE, Dbt, row_counts

LATEST_VIEW = "dyno_crm.report_deal_aging_latest"
INPUT_PARAMS = (
    "threshold_days",
    "cycle_threshold_days",
    "period_start",
    "period_end",
    "pipeline_id",
    "principal_type",
    "principal_id",
    "stage_id",
    "breakdown",
)
# One filter or breakdown each: a run with any of them is not what a dashboard shows.
FILTERS = (
    ("period_start", "2020-01-01T00:00:00+00:00"),
    ("period_end", "2030-01-01T00:00:00+00:00"),
    ("pipeline_id", str(uuid.uuid4())),
    ("stage_id", str(uuid.uuid4())),
    ("principal_type", "GROUP"),
    ("principal_id", str(uuid.uuid4())),
    ("breakdown", "owner"),
)


def new_run(database_env, command: str, tenant_id: str, *filters: str) -> str:
    done = run_runner(
        database_env, command, "--tenant-id", tenant_id, "--threshold-days", "30", *filters
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def finished_days_ago(db: psycopg.Connection, run_id: str, days: int) -> None:
    db.execute(
        f"update {REPORT_RUN_TABLE} set generated_at = now() - make_interval(days => %s),"
        " finished_at = case when finished_at is not null"
        " then now() - make_interval(days => %s) end where run_id = %s",
        (days, days, run_id),
    )


def deal_count(db: psycopg.Connection, run_id: str) -> int:
    return db.execute(f"select count(*) from {DEAL_TABLE} where run_id = %s", (run_id,)).fetchone()[
        0
    ]


def prune(database_env, *args: str) -> tuple[list[str], str]:
    done = run_runner(database_env, "prune", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.split(), done.stderr


def test_old_finished_runs_go_with_their_rows(database_env, db, ids, report_ready):
    tenant = ids.tenants[2]
    oldest, old, recent = (new_run(database_env, "run", tenant) for _ in range(3))
    queued = new_run(database_env, "submit", tenant)  # no worker runs here: it stays QUEUED
    for run_id, days in ((oldest, 41), (old, 40), (queued, 50)):
        finished_days_ago(db, run_id, days)
    assert fact_rows(db, old) and deal_count(db, old) > 0

    pruned, summary = prune(database_env, "--older-than-days", "30", "--tenant-id", tenant)

    assert {oldest, old} <= set(pruned) and not {recent, queued} & set(pruned)
    assert "were deleted with their rows" in summary
    for run_id in (oldest, old):
        assert header(db, run_id) is None
        assert fact_rows(db, run_id) == [] and deal_count(db, run_id) == 0
    assert header(db, recent)["status"] == "SUCCEEDED" and fact_rows(db, recent)
    assert header(db, queued)["status"] == "QUEUED"


@pytest.fixture
def own_tenant(db: psycopg.Connection) -> Iterator[str]:
    """A tenant of the test's own, with an empty pipeline: no other test's runs are its latest."""
    tenant, pipeline = str(uuid.uuid4()), str(uuid.uuid4())
    db.execute(
        "insert into dyno_crm.pipeline (id, tenant_id, name) values (%s, %s, 'Empty')",
        (pipeline, tenant),
    )
    try:
        yield tenant
    finally:
        # Gone again, so later --all-tenants runs see only the dataset's tenants.
        db.execute("delete from dyno_crm.pipeline where id = %s", (pipeline,))


def test_each_tenants_latest_succeeded_runs_stay_however_old(
    database_env, db, own_tenant, report_ready
):
    tenant = own_tenant
    runs = [new_run(database_env, "run", tenant) for _ in range(3)]
    for run_id, days in zip(runs, (100, 99, 98), strict=True):
        finished_days_ago(db, run_id, days)

    def pruned(*args: str) -> list[str]:
        return prune(database_env, "--older-than-days", "30", "--tenant-id", tenant, *args)[0]

    assert pruned("--keep-latest", "2") == [runs[0]]
    assert pruned() == [runs[1]]
    assert header(db, runs[2])["status"] == "SUCCEEDED"
    assert pruned("--keep-latest", "1") == []


def test_the_runs_the_dashboards_show_stay(
    database_env, db, dbt: Dbt, ids: DatasetIds, report_ready
):
    tenant = ids.tenants[0]
    # Its earlier runs, older still: the whole-pipeline run below is the latest one it has.
    db.execute(
        f"update {REPORT_RUN_TABLE} set generated_at = now() - interval '200 days',"
        " finished_at = now() - interval '200 days'"
        " where tenant_id = %s and status in ('SUCCEEDED', 'FAILED')",
        (tenant,),
    )
    whole = new_run(database_env, "run", tenant)
    one_user = new_run(
        database_env, "run", tenant, "--principal-type", "USER", "--principal-id", ids.owner_user_id
    )
    filtered = [one_user, *(add_succeeded_run(db, tenant, {key: value}) for key, value in FILTERS)]
    # Every filtered run newer than the whole-pipeline one, and all of them old enough to go.
    for days, run_id in enumerate([*filtered, whole], start=40):
        finished_days_ago(db, run_id, days)
    result = dbt.invoke("run", "--select", "report_deal_aging_latest")
    assert result.success, result.exception
    shown_before = shown_runs(db)
    assert shown_before[tenant] == whole

    pruned, summary = prune(database_env, "--older-than-days", "30", "--keep-latest", "1")

    assert whole not in pruned and set(filtered) <= set(pruned)
    assert shown_runs(db) == shown_before
    assert header(db, whole)["status"] == "SUCCEEDED" and fact_rows(db, whole)
    assert "the latest 1 SUCCEEDED unfiltered run(s) of each tenant are kept" in summary


def add_succeeded_run(db: psycopg.Connection, tenant_id: str, filters: dict[str, str]) -> str:
    """A SUCCEEDED header with one filter, written as the runner writes it: every key of
    input_params present, the period bounds in their columns too."""
    run_id = str(uuid.uuid4())
    input_params = dict.fromkeys(INPUT_PARAMS) | {"threshold_days": 30} | filters
    db.execute(
        f"insert into {REPORT_RUN_TABLE} (run_id, tenant_id, report_type, generated_at,"
        " period_start, period_end, input_params, status, finished_at)"
        " values (%s, %s, 'deal_aging', now(), %s, %s, %s, 'SUCCEEDED', now())",
        (
            run_id,
            tenant_id,
            filters.get("period_start"),
            filters.get("period_end"),
            Jsonb(input_params),
        ),
    )
    return run_id


def shown_runs(db: psycopg.Connection) -> dict[str, str]:
    """The run each tenant's dashboard shows."""
    return {
        str(tenant_id): str(run_id)
        for tenant_id, run_id in db.execute(
            f"select distinct tenant_id, run_id from {LATEST_VIEW}"
        ).fetchall()
    }


def test_keep_latest_0_is_refused(database_env):
    done = run_runner(database_env, "prune", "--older-than-days", "30", "--keep-latest", "0")

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "error: --keep-latest must be 1 or more, got '0': the dashboards show each tenant's"
        " latest run\n"
    )


def test_dry_run_lists_the_runs_and_deletes_nothing(database_env, db, ids, report_ready):
    tenant = ids.tenants[1]
    old = new_run(database_env, "run", tenant)
    new_run(database_env, "run", tenant)
    finished_days_ago(db, old, 60)

    pruned, summary = prune(
        database_env, "--older-than-days", "30", "--tenant-id", tenant, "--dry-run"
    )

    assert old in pruned and "would be deleted" in summary
    assert header(db, old)["status"] == "SUCCEEDED" and fact_rows(db, old)


@pytest.mark.parametrize(
    "args",
    [
        ["--older-than-days", "-1"],
        ["--older-than-days", "1.5"],
        ["--older-than-days", "30", "--keep-latest", "all"],
        ["--older-than-days", "30", "--keep-latest", "0"],
        ["--older-than-days", "30", "--tenant-id", "acme"],
    ],
)
def test_bad_input_exits_2_and_deletes_nothing(args, database_env, db, report_ready):
    before = row_counts(db)

    done = run_runner(database_env, "prune", *args)

    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert row_counts(db) == before
