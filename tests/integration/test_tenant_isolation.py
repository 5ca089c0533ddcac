"""One tenant's bad CRM rows fail that tenant's run at most, never another's, and no header's
error carries another tenant's ids or values. Both paths that compute many runs at once: the
runner's nightly `--all-tenants` and the analysts' plain `dbt run`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from .report_checks import assert_run_matches_oracle, header, runs_of_invocation
from .runner_process import run_runner
from .support import DEAL_TABLE, FACT_TABLE

BadRows = Callable[[psycopg.Connection, str], None]


def _open_deal(db: psycopg.Connection, tenant: str, offset: int = 0) -> tuple[Any, Any]:
    """An open deal of the tenant and its current stage row."""
    return db.execute(
        "select d.id, s.id from dyno_crm.deal d"
        " join dyno_crm.deal_pipeline_stage_state s on s.deal_id = d.id and s.is_current"
        " join dyno_crm.pipeline_stage p on p.id = s.pipeline_stage_id"
        " where d.tenant_id = %s and p.stage_state not in ('DONE_SUCCESS', 'DONE_FAILED')"
        " order by d.id offset %s limit 1",
        (tenant, offset),
    ).fetchone()


def negative_amount(db: psycopg.Connection, tenant: str) -> None:
    """A deal on track with a negative amount: its stage's at-risk amount exceeds its total."""
    deal_id, state_id = _open_deal(db, tenant)
    db.execute("update dyno_crm.deal set amount = -123456789.12 where id = %s", (deal_id,))
    db.execute(
        "update dyno_crm.deal_pipeline_stage_state set entered_at = now() - interval '1 day'"
        " where id = %s",
        (state_id,),
    )
    db.execute(
        "update dyno_crm.deal set created_at = now() - interval '2 days' where id = %s",
        (deal_id,),
    )


def nan_amount(db: psycopg.Connection, tenant: str) -> None:
    deal_id, _ = _open_deal(db, tenant)
    db.execute("update dyno_crm.deal set amount = 'NaN' where id = %s", (deal_id,))


def infinite_timestamps(db: psycopg.Connection, tenant: str) -> None:
    _, state_id = _open_deal(db, tenant)
    db.execute(
        "update dyno_crm.deal_pipeline_stage_state set entered_at = '-infinity' where id = %s",
        (state_id,),
    )
    deal_id, _ = _open_deal(db, tenant, offset=1)
    db.execute("update dyno_crm.deal set created_at = 'infinity' where id = %s", (deal_id,))


def future_timestamps(db: psycopg.Connection, tenant: str) -> None:
    _, state_id = _open_deal(db, tenant)
    db.execute(
        "update dyno_crm.deal_pipeline_stage_state set entered_at = now() + interval '400 days'"
        " where id = %s",
        (state_id,),
    )


def duplicate_current_rows(db: psycopg.Connection, tenant: str) -> None:
    _, state_id = _open_deal(db, tenant)
    db.execute(
        "insert into dyno_crm.deal_pipeline_stage_state"
        " (id, tenant_id, deal_id, pipeline_stage_id, entered_at, exited_at, is_current)"
        " select gen_random_uuid(), tenant_id, deal_id, pipeline_stage_id,"
        " entered_at - interval '1 day', null, true"
        " from dyno_crm.deal_pipeline_stage_state where id = %s",
        (state_id,),
    )


def amounts_past_the_column(db: psycopg.Connection, tenant: str) -> None:
    """Two deals in one stage whose sum numeric(20,2) cannot hold."""
    _, state_id = _open_deal(db, tenant)
    stage_id = db.execute(
        "select pipeline_stage_id from dyno_crm.deal_pipeline_stage_state where id = %s",
        (state_id,),
    ).fetchone()[0]
    db.execute(
        "update dyno_crm.deal set amount = 999999999999999999.99 where id in ("
        " select s.deal_id from dyno_crm.deal_pipeline_stage_state s"
        " where s.pipeline_stage_id = %s and s.is_current and s.tenant_id = %s"
        " order by s.deal_id limit 2)",
        (stage_id, tenant),
    )


TOLERATED: dict[str, BadRows] = {
    "negative amount": negative_amount,
    "NaN amount": nan_amount,
    "infinite timestamps": infinite_timestamps,
    "future timestamps": future_timestamps,
}
FAIL_THAT_RUN: dict[str, BadRows] = {
    "duplicate current rows": duplicate_current_rows,
    "amounts past numeric(20,2)": amounts_past_the_column,
}


@contextlib.contextmanager
def bad_rows(db: psycopg.Connection, tenant: str, damage: BadRows) -> Iterator[None]:
    """The tenant's CRM rows damaged for the test, restored afterwards."""
    tables = ("deal", "deal_pipeline_stage_state")
    for table in tables:
        db.execute(f"create temp table saved_{table} as table dyno_crm.{table}")
    try:
        damage(db, tenant)
        yield
    finally:
        for table in reversed(tables):
            # Rows the damage added go, rows it changed get their old values back.
            db.execute(
                f"delete from dyno_crm.{table} t where not exists"
                f" (select 1 from saved_{table} s where s.id = t.id)"
            )
        db.execute(
            "update dyno_crm.deal d set amount = s.amount, created_at = s.created_at"
            " from saved_deal s where s.id = d.id"
            " and (d.amount is distinct from s.amount or d.created_at <> s.created_at)"
        )
        db.execute(
            "update dyno_crm.deal_pipeline_stage_state d set entered_at = s.entered_at"
            " from saved_deal_pipeline_stage_state s where s.id = d.id"
            " and d.entered_at <> s.entered_at"
        )
        for table in tables:
            db.execute(f"drop table saved_{table}")


def runs_by_tenant(db: psycopg.Connection, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    runs = [header(db, run_id) for run_id in run_ids]
    return {str(run["tenant_id"]): run for run in runs}


def all_tenants_through_the_runner(database_env: dict[str, str], db, ids) -> dict[str, dict]:
    done = run_runner(database_env, "run", "--all-tenants", "--threshold-days", "30")
    run_ids = [line for line in done.stdout.splitlines() if line]
    runs = runs_by_tenant(db, run_ids)
    assert set(runs) == set(ids.tenants), done.stderr
    failed = [run for run in runs.values() if run["status"] == "FAILED"]
    assert done.returncode == (1 if failed else 0), done.stderr
    assert "Traceback" not in done.stderr
    return runs


def all_tenants_through_dbt(dbt, db, ids) -> dict[str, dict]:
    result = dbt.run({"threshold_days": 30})
    invocation_id = db.execute(
        "select dbt_invocation_id from dyno_crm.report_run order by generated_at desc limit 1"
    ).fetchone()[0]
    runs = {str(run["tenant_id"]): run for run in runs_of_invocation(db, str(invocation_id))}
    assert set(runs) == set(ids.tenants)
    del result  # dbt's own exit status reflects the failed run; the headers are what count
    return runs


PATHS = {"runner --all-tenants": "runner", "dbt run": "dbt"}


def compute_all(path: str, database_env, dbt, db, ids) -> dict[str, dict]:
    if path == "runner":
        return all_tenants_through_the_runner(database_env, db, ids)
    return all_tenants_through_dbt(dbt, db, ids)


def assert_others_untouched(db, ids, runs: dict[str, dict], culprit: str) -> None:
    """The other tenants SUCCEEDED with exactly the facts the reference query gives them."""
    for tenant in ids.tenants:
        if tenant == culprit:
            continue
        run = runs[tenant]
        assert run["status"] == "SUCCEEDED", run["error_message"]
        assert run["error_message"] is None
        assert_run_matches_oracle(db, run)


def assert_private_error(db, ids, run: dict[str, Any], culprit: str) -> None:
    """The culprit's reason names no other tenant's ids or values, nor a server path."""
    message = run["error_message"] or ""
    assert message, "a FAILED run says why"
    others = [tenant for tenant in ids.tenants if tenant != culprit]
    other_deals = [
        str(deal_id)
        for (deal_id,) in db.execute(
            "select id from dyno_crm.deal where tenant_id = any(%s::uuid[])", (others,)
        )
    ]
    for text in [*others, *other_deals]:
        assert text not in message
    assert "Failing row contains" not in message and "Key (" not in message
    assert "/" not in message.replace("numeric(20,2)", ""), message
    assert "\n" not in message and len(message) <= 500, message


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize("kind", TOLERATED, ids=TOLERATED.keys())
def test_tolerated_bad_rows_fail_nobody(kind, path, database_env, dbt, db, ids, report_ready):
    culprit = ids.tenants[1]
    with bad_rows(db, culprit, TOLERATED[kind]):
        runs = compute_all(path, database_env, dbt, db, ids)
        assert runs[culprit]["status"] == "SUCCEEDED", runs[culprit]["error_message"]
        assert_others_untouched(db, ids, runs, culprit)


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize("kind", FAIL_THAT_RUN, ids=FAIL_THAT_RUN.keys())
def test_bad_rows_fail_only_their_tenants_run(kind, path, database_env, dbt, db, ids, report_ready):
    culprit = ids.tenants[1]
    with bad_rows(db, culprit, FAIL_THAT_RUN[kind]):
        runs = compute_all(path, database_env, dbt, db, ids)
    failed = runs[culprit]
    assert failed["status"] == "FAILED"
    assert_private_error(db, ids, failed, culprit)
    for table in (FACT_TABLE, DEAL_TABLE):
        left = db.execute(f"select count(*) from {table} where run_id = %s", (failed["run_id"],))
        assert left.fetchone()[0] == 0
    assert_others_untouched(db, ids, runs, culprit)


def test_negative_amounts_count_as_they_are(database_env, dbt, db, ids, report_ready):
    """The report sums a negative amount like any other, as the reference query does."""
    culprit = ids.tenants[1]
    with bad_rows(db, culprit, negative_amount):
        done = run_runner(database_env, "run", "--tenant-id", culprit, "--threshold-days", "30")
        assert done.returncode == 0, done.stderr
        run = header(db, done.stdout.splitlines()[-1])
        assert_run_matches_oracle(db, run)


def test_an_earlier_fact_tables_amount_check_is_dropped(database_env, db, ids, report_ready):
    """Tables made before negative amounts were counted carry a check they would break; a database
    set up before the migrations were recorded gets them all, idempotently."""
    db.execute("drop table dyno_crm.deal_aging_migration")
    db.execute(
        f"alter table {FACT_TABLE} add constraint ck_report_deal_aging_fact_at_risk_amount"
        " check (at_risk_amount <= total_amount) not valid"
    )
    culprit = ids.tenants[1]
    with bad_rows(db, culprit, negative_amount):
        done = run_runner(database_env, "run", "--tenant-id", culprit, "--threshold-days", "30")
    assert done.returncode == 0, done.stderr
    left = db.execute(
        "select count(*) from pg_constraint where conname = 'ck_report_deal_aging_fact_at_risk_amount'"
    ).fetchone()
    assert left == (0,)
