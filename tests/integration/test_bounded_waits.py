"""Every wait of a run has a bound: a lock held elsewhere, a queue nobody serves. When one fires
the run ends FAILED with a readable reason and no rows, and the caller gets one line and exit 1."""

from __future__ import annotations

import subprocess
import time

import psycopg

from .report_checks import header
from .runner_process import run_runner, start_runner, wait_until
from .support import DEAL_TABLE, FACT_TABLE, REPORT_RUN_TABLE, connect, row_counts


def _hold(dbname: str, table: str) -> psycopg.Connection:
    holder = connect(dbname, application_name="pytest-db")
    holder.execute(f"lock table {table} in access exclusive mode")
    return holder


def _run_with_lock_timeout(
    database_env: dict[str, str], tenant: str, seconds: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """A run of the tenant whose waits for a lock end after `seconds`."""
    return run_runner(
        database_env,
        "run",
        "--tenant-id",
        tenant,
        "--threshold-days",
        "30",
        "--lock-timeout",
        seconds,
        timeout=120,
        **env,
    )


def _latest(db: psycopg.Connection) -> dict:
    run_id = db.execute(
        f"select run_id from {REPORT_RUN_TABLE} order by generated_at desc limit 1"
    ).fetchone()[0]
    return header(db, run_id)


def _assert_failed_without_rows(db: psycopg.Connection, run: dict, words: str) -> None:
    assert run["status"] == "FAILED" and words in run["error_message"], run["error_message"]
    for table in (FACT_TABLE, DEAL_TABLE):
        rows = db.execute(f"select count(*) from {table} where run_id = %s", (run["run_id"],))
        assert rows.fetchone()[0] == 0


def test_a_locked_table_fails_the_run_after_the_lock_timeout(database_env, db, ids, report_ready):
    holder = _hold(database_env["PGDATABASE"], FACT_TABLE)
    try:
        started = time.monotonic()
        done = _run_with_lock_timeout(database_env, ids.tenants[0], "2")
        elapsed = time.monotonic() - started
        run = _latest(db)
    finally:
        holder.close()

    assert done.returncode == 1, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert "lock timeout" in done.stderr
    _assert_failed_without_rows(db, run, "lock timeout")
    assert elapsed < 45  # the bound, not the test's own subprocess timeout, ended the wait


def test_the_cleanup_survives_a_lock_timeout_from_pgoptions(database_env, db, ids, report_ready):
    """The caller's own PGOPTIONS bound the cleanup's statements too: it must not raise."""
    holder = _hold(database_env["PGDATABASE"], FACT_TABLE)
    try:
        done = _run_with_lock_timeout(
            database_env, ids.tenants[1], "3", PGOPTIONS="-c lock_timeout=3s"
        )
        run = _latest(db)
    finally:
        holder.close()

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    _assert_failed_without_rows(db, run, "lock timeout")


def test_a_dbt_var_bounds_the_analysts_lock_wait(dbt, database_env, db, ids, report_ready):
    holder = _hold(database_env["PGDATABASE"], DEAL_TABLE)
    try:
        result = dbt.run(
            {"tenant_id": ids.tenants[2], "threshold_days": 30, "lock_timeout_seconds": 2}
        )
        run = _latest(db)
    finally:
        holder.close()

    assert not result.success
    _assert_failed_without_rows(db, run, "lock timeout")


def test_submit_wait_gives_up_when_no_worker_serves(database_env, db, ids, report_ready):
    started = time.monotonic()
    done = run_runner(
        database_env,
        "submit",
        "--tenant-id",
        ids.tenants[0],
        "--threshold-days",
        "30",
        "--wait",
        "--timeout",
        "2",
        timeout=60,
    )
    elapsed = time.monotonic() - started

    assert done.returncode == 1
    assert "no worker started it within 2 s" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    run = header(db, done.stdout.split()[0]) if done.stdout.strip() else _latest(db)
    assert run["status"] == "FAILED"  # withdrawn: a worker starting later computes nothing
    assert elapsed < 30


def test_submit_wait_on_a_deleted_header_is_one_line(database_env, db, ids, report_ready):
    """The header vanishing under a waiting client (prune, an operator) is no traceback."""
    before = row_counts(db)[0]
    waiting = start_runner(
        database_env,
        "submit",
        "--tenant-id",
        ids.tenants[0],
        "--threshold-days",
        "30",
        "--wait",
        "--timeout",
        "60",
    )
    try:
        wait_until(lambda: row_counts(db)[0] > before, what="the queued request")
        db.execute(f"delete from {REPORT_RUN_TABLE} where status = 'QUEUED'")
        _, stderr = waiting.communicate(timeout=30)
    finally:
        waiting.kill()

    assert waiting.returncode == 1
    assert stderr.strip().endswith("its header was deleted while it was waited for"), stderr
    assert len(stderr.splitlines()) == 1


def test_the_setup_before_a_run_is_bounded_too(database_env, db, ids, report_ready):
    """A missing view is rebuilt before the run; with its table locked, that waits on the lock."""
    db.execute("drop view if exists dyno_crm.report_deal_aging_latest")
    holder = _hold(database_env["PGDATABASE"], FACT_TABLE)
    try:
        started = time.monotonic()
        done = _run_with_lock_timeout(database_env, ids.tenants[0], "2")
        elapsed = time.monotonic() - started
    finally:
        holder.close()

    assert done.returncode == 1, done.stderr
    assert "lock timeout" in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert elapsed < 60
    rebuilt = run_runner(database_env, "setup")
    assert rebuilt.returncode == 0, rebuilt.stderr
