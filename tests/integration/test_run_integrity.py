"""A run is all or nothing, and `sweep` never fails a run that dbt itself is still computing."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg

from .report_checks import fact_rows, header
from .runner_process import block_deals, blocked_on_lock, run_runner, runner_env, wait_until
from .support import DEAL_TABLE, FACT_TABLE, REPORT_RUN_TABLE, row_counts

DBT = str(Path(sys.executable).with_name("dbt"))


@contextlib.contextmanager
def deal_list_inserts_fail(db: psycopg.Connection) -> Iterator[None]:
    """Every insert into the deal list fails, as a full disk or a broken constraint would."""
    db.execute(
        "create function pg_temp.refuse() returns trigger language plpgsql as"
        " $$ begin raise exception 'the deal list refuses rows'; end $$"
    )
    db.execute(
        f"create trigger refuse_deals before insert on {DEAL_TABLE}"
        " for each statement execute function pg_temp.refuse()"
    )
    try:
        yield
    finally:
        db.execute(f"drop trigger refuse_deals on {DEAL_TABLE}")


def _deal_count(db: psycopg.Connection, run_id: str) -> int:
    return db.execute(f"select count(*) from {DEAL_TABLE} where run_id = %s", (run_id,)).fetchone()[
        0
    ]


def test_a_failed_recompute_never_leaves_a_succeeded_run_that_disagrees(
    dbt, database_env, db, ids, report_ready
):
    done = run_runner(database_env, "run", "--tenant-id", ids.tenants[0], "--threshold-days", "30")
    run_id = done.stdout.splitlines()[-1]
    assert header(db, run_id)["status"] == "SUCCEEDED" and _deal_count(db, run_id) > 0

    with deal_list_inserts_fail(db):
        result = dbt.invoke("run", "--select", "tag:report_run", dbt_vars={"run_id": run_id})

    assert not result.success
    run = header(db, run_id)
    assert run["status"] == "FAILED" and "the deal list refuses rows" in run["error_message"]
    assert fact_rows(db, run_id) == [] and _deal_count(db, run_id) == 0


def test_a_recompute_of_a_run_being_computed_is_refused(dbt, database_env, db, ids, report_ready):
    done = run_runner(
        database_env, "submit", "--tenant-id", ids.tenants[1], "--threshold-days", "9"
    )
    run_id = done.stdout.split()[0]

    result = dbt.invoke("run", "--select", "tag:report_run", dbt_vars={"run_id": run_id})

    assert not result.success and "is not a finished deal_aging run" in str(result.exception)
    assert header(db, run_id)["status"] == "QUEUED"
    db.execute(f"delete from {REPORT_RUN_TABLE} where run_id = %s", (run_id,))


def _start_analysts_dbt(dbt, database_env: dict[str, str], tenant: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DBT, "run", *dbt.project_args, "--vars", f"{{tenant_id: '{tenant}', threshold_days: 30}}"],
        env=runner_env(database_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _dbt_header(db: psycopg.Connection) -> dict | None:
    row = db.execute(
        f"select run_id from {REPORT_RUN_TABLE} where executor = 'dbt' and status = 'IN_PROGRESS'"
        " order by generated_at desc limit 1"
    ).fetchone()
    return header(db, row[0]) if row else None


def test_sweep_leaves_a_live_dbt_invocation_alone(dbt, database_env, db, ids, report_ready):
    blocker = block_deals(database_env["PGDATABASE"])
    analysts = _start_analysts_dbt(dbt, database_env, ids.tenants[2])
    try:
        wait_until(lambda: blocked_on_lock(db), timeout=120, what="dbt to wait on the lock")
        run = _dbt_header(db)
        assert run is not None

        swept = run_runner(database_env, "sweep", "--older-than", "0")

        assert swept.returncode == 0, swept.stderr
        assert str(run["run_id"]) not in swept.stdout
        assert header(db, run["run_id"])["status"] == "IN_PROGRESS"
    finally:
        blocker.close()
    output, _ = analysts.communicate(timeout=180)
    assert analysts.returncode == 0, output
    assert header(db, run["run_id"])["status"] == "SUCCEEDED"
    assert fact_rows(db, run["run_id"])


def test_sweep_fails_a_dbt_invocation_that_is_gone(dbt, database_env, db, ids, report_ready):
    blocker = block_deals(database_env["PGDATABASE"])
    analysts = _start_analysts_dbt(dbt, database_env, ids.tenants[2])
    try:
        wait_until(lambda: blocked_on_lock(db), timeout=120, what="dbt to wait on the lock")
        run = _dbt_header(db)
        analysts.send_signal(signal.SIGKILL)
        analysts.wait(timeout=30)
    finally:
        blocker.close()
    # Its blocked statement ends on the server once the lock is free and the client is gone.
    wait_until(
        lambda: (
            not db.execute(
                "select count(*) from pg_stat_activity where query like %s",
                (f"%deal_aging dbt invocation {run['dbt_invocation_id']}%",),
            ).fetchone()[0]
        ),
        what="the killed invocation's last statement to end",
    )

    swept = run_runner(database_env, "sweep", "--older-than", "0")

    assert swept.returncode == 0, swept.stderr
    assert str(run["run_id"]) in swept.stdout.split()
    after = header(db, run["run_id"])
    assert after["status"] == "FAILED" and "abandoned" in after["error_message"]
    for table in (FACT_TABLE, DEAL_TABLE):
        count = db.execute(f"select count(*) from {table} where run_id = %s", (run["run_id"],))
        assert count.fetchone()[0] == 0


def test_one_run_keyed_model_alone_opens_no_run(dbt, database_env, db, ids, report_ready):
    """Facts without their deal list could never add up: such an invocation is refused."""
    before = row_counts(db)

    result = dbt.invoke(
        "run", "--select", "report_deal_aging_fact", dbt_vars={"tenant_id": ids.tenants[0]}
    )

    assert not result.success
    assert "select every run-keyed model" in str(result.exception)
    assert row_counts(db) == before


def test_dbt_refuses_a_tenant_without_a_pipeline(dbt, db, report_ready):
    """Before, a tenant that does not exist got a SUCCEEDED run with no rows."""
    before = row_counts(db)

    result = dbt.run({"tenant_id": "00000000-0000-4000-8000-000000000000", "threshold_days": 30})

    assert not result.success
    assert "has no pipeline" in str(result.exception)
    assert row_counts(db) == before
