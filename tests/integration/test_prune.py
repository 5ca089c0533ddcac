"""`python -m runner prune`: old finished runs go with their rows; each tenant's latest SUCCEEDED
runs, and every run not finished, stay."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from .report_checks import fact_rows, header
from .runner_process import run_runner
from .support import DEAL_TABLE, REPORT_RUN_TABLE, row_counts


def new_run(database_env, command: str, tenant_id: str) -> str:
    done = run_runner(database_env, command, "--tenant-id", tenant_id, "--threshold-days", "30")
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


def test_each_tenants_latest_succeeded_runs_stay_however_old(database_env, db, report_ready):
    tenant = str(uuid.uuid4())  # a tenant of its own: no other test's runs are its latest
    runs = [new_run(database_env, "run", tenant) for _ in range(3)]
    for run_id, days in zip(runs, (100, 99, 98), strict=True):
        finished_days_ago(db, run_id, days)

    def pruned(*args: str) -> list[str]:
        return prune(database_env, "--older-than-days", "30", "--tenant-id", tenant, *args)[0]

    assert pruned("--keep-latest", "2") == [runs[0]]
    assert pruned() == [runs[1]]
    assert header(db, runs[2])["status"] == "SUCCEEDED"
    assert pruned("--keep-latest", "0") == [runs[2]]


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
        ["--older-than-days", "30", "--tenant-id", "acme"],
    ],
)
def test_bad_input_exits_2_and_deletes_nothing(args, database_env, db, report_ready):
    before = row_counts(db)

    done = run_runner(database_env, "prune", *args)

    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert row_counts(db) == before
