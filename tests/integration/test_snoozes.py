"""Snoozed deals (deal_aging_snooze): a run that honors snoozes takes a deal snoozed past its as-of
instant out of the at-risk counts and lists it apart; by default snoozes change nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from dbt_common.invocation import get_invocation_id

from crm_data.generator import DatasetSpec, create_source_schema, load_dataset
from runner.dbt.invocation import DbtSettings
from runner.domain.params import build_params
from runner.domain.runs import RunRequest
from runner.store.tables import Tables
from runner.usecases.execute import execute_runs

from .report_checks import assert_run_matches_oracle, fact_rows, header, runs_of_invocation
from .runner_process import run_runner
from .support import (
    DEAL_TABLE,
    FACT_TABLE,
    Dbt,
    connect,
    create_database,
    drop_database,
    report_table_exists,
    server_env,
)

PERIOD_END = "2026-10-20T00:00:00Z"
SNOOZE = "dyno_crm.deal_aging_snooze"


@pytest.fixture
def snoozes(optional_tables) -> str:
    return SNOOZE


def dbt_run(dbt: Dbt, db: psycopg.Connection, dbt_vars: dict[str, Any]) -> dict[str, Any]:
    result = dbt.run(dbt_vars)
    assert result.success, result.exception
    [run] = runs_of_invocation(db, get_invocation_id())
    assert run["status"] == "SUCCEEDED", run["error_message"]
    return run


def listed(db: psycopg.Connection, run_id: Any) -> dict[uuid.UUID, dict[str, Any]]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(f"select * from {DEAL_TABLE} where run_id = %s", (run_id,)).fetchall()
    return {row["deal_id"]: row for row in rows}


def totals(db: psycopg.Connection, run_id: Any) -> tuple[int, int]:
    return db.execute(
        f"select sum(at_risk_deal_count), sum(snoozed_deal_count) from {FACT_TABLE}"
        " where run_id = %s",
        (run_id,),
    ).fetchone()


def snooze_two(db: psycopg.Connection, tenant_id: str, plain_run_id: Any) -> tuple[Any, Any]:
    """Of a plain run's at-risk deals: one snoozed until a second after as-of, one until as-of."""
    snoozed, ended = sorted(listed(db, plain_run_id))[:2]
    db.execute(
        f"insert into {SNOOZE} (tenant_id, deal_id, snoozed_until, reason, snoozed_by)"
        " values (%s, %s, %s::timestamptz + interval '1 second', 'Waiting for <budget>', 'ann'),"
        " (%s, %s, %s, null, null)",
        (tenant_id, snoozed, PERIOD_END, tenant_id, ended, PERIOD_END),
    )
    return snoozed, ended


def assert_snoozed(db: psycopg.Connection, plain: Any, honored: Any, snoozed: Any, ended: Any):
    plain_at_risk, plain_snoozed = totals(db, plain)
    assert (plain_snoozed, totals(db, honored)) == (0, (plain_at_risk - 1, 1))
    deals = listed(db, honored)
    assert set(deals) == set(listed(db, plain))
    assert (
        deals[snoozed]["is_snoozed"] and deals[snoozed]["snooze_reason"] == "Waiting for <budget>"
    )
    assert not deals[ended]["is_snoozed"] and deals[ended]["snoozed_until"] is None
    # Everything but the at-risk figures is the plain run's: the stages, limits, ages and totals.
    unchanged = [row[:6] + row[8:12] for row in fact_rows(db, plain)]
    assert [row[:6] + row[8:12] for row in fact_rows(db, honored)] == unchanged != []


def test_dbt_run_honors_snoozes_only_when_asked(snoozes, dbt, db, ids):
    base = {"tenant_id": ids.tenants[0], "threshold_days": 30, "period_end": PERIOD_END}
    plain = dbt_run(dbt, db, base)
    snoozed, ended = snooze_two(db, ids.tenants[0], plain["run_id"])

    ignored = dbt_run(dbt, db, base)
    honored = dbt_run(dbt, db, base | {"snoozes": "HONOR"})

    # By default a snooze changes nothing: the report is still the reference query's.
    assert ignored["input_params"]["snoozes"] == "ignore"
    assert assert_run_matches_oracle(db, ignored) == fact_rows(db, plain["run_id"])
    assert honored["input_params"]["snoozes"] == "honor"
    assert_snoozed(db, plain["run_id"], honored["run_id"], snoozed, ended)
    assert dbt.invoke("test", "--select", "assert_deal_list_adds_up_to_the_facts").success


def test_runner_and_worker_honor_snoozes(snoozes, database_env, db, ids):
    args = ["--tenant-id", ids.tenants[1], "--threshold-days", "30", "--period-end", PERIOD_END]
    plain = run_runner(database_env, "run", *args)
    assert plain.returncode == 0, plain.stderr
    snoozed, ended = snooze_two(db, ids.tenants[1], plain.stdout.strip())

    ran = run_runner(database_env, "run", *args, "--snoozes", "honor")
    queued = run_runner(database_env, "submit", *args, "--snoozes", "honor")
    assert ran.returncode == queued.returncode == 0, ran.stderr + queued.stderr
    worked = run_runner(database_env, "worker", "--exit-when-idle", "--poll-seconds", "0.2")
    assert worked.returncode == 0, worked.stderr

    for run_id in (ran.stdout.strip(), queued.stdout.strip()):
        assert header(db, run_id)["input_params"]["snoozes"] == "honor"
        assert_snoozed(db, plain.stdout.strip(), run_id, snoozed, ended)
    shown = json.loads(
        run_runner(database_env, "show", ran.stdout.strip(), "--deals", "--json").stdout
    )
    assert [d["is_snoozed"] for d in shown["deals"]][-1] is True
    assert str(snoozed) == shown["deals"][-1]["deal_id"]


def test_one_invocation_computes_runs_that_honor_and_ignore(snoozes, database_env, db, ids):
    """The batching of workers: runs with different parameters in one dbt invocation each read
    theirs from their header."""
    tenant = uuid.UUID(ids.tenants[2])
    plain, honored = (
        RunRequest(tenant, build_params(threshold_days="30", period_end=PERIOD_END, snoozes=mode))
        for mode in ("ignore", "honor")
    )
    execute_runs([plain], DbtSettings(), Tables("dyno_crm"))
    snoozed, ended = snooze_two(db, str(tenant), plain.run_id)
    again = RunRequest(tenant, plain.params)

    results = execute_runs([again, honored], DbtSettings(), Tables("dyno_crm"))

    assert [result.status for result in results] == ["SUCCEEDED", "SUCCEEDED"]
    assert fact_rows(db, again.run_id) == fact_rows(db, plain.run_id)
    assert_snoozed(db, plain.run_id, honored.run_id, snoozed, ended)


def test_without_the_table_a_run_that_honors_snoozes_is_the_plain_report(dbt, db, ids):
    assert not report_table_exists(db, "deal_aging_snooze")
    run = dbt_run(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30, "snoozes": "honor"})
    assert assert_run_matches_oracle(db, run)


@pytest.fixture
def fresh_env() -> Iterator[dict[str, str]]:
    name = create_database("deal_aging_upgrade")
    try:
        with connect(name) as conn:
            create_source_schema(conn)
            load_dataset(conn, DatasetSpec(deals=300, tenants=1, seed=5))
            conn.commit()
        yield server_env() | {"PGDATABASE": name}
    finally:
        drop_database(name)


def test_the_setup_adds_the_new_columns_to_tables_built_before_them(fresh_env):
    assert run_runner(fresh_env, "setup").returncode == 0
    with connect(fresh_env["PGDATABASE"], autocommit=True) as conn:
        # The tables as an earlier version built them: migrations 3 (snoozes) and 4 (cumulative
        # days) pending.
        conn.execute(
            "drop view dyno_crm.report_deal_aging_latest, dyno_crm.report_deal_aging_trend"
        )
        conn.execute(f"alter table {FACT_TABLE} drop column snoozed_deal_count")
        conn.execute(
            f"alter table {DEAL_TABLE} drop column is_snoozed, drop column snoozed_until,"
            " drop column snooze_reason, drop column cumulative_days_in_stage"
        )
        conn.execute("delete from dyno_crm.deal_aging_migration where version in (3, 4)")
        [tenant] = [
            str(t) for (t,) in conn.execute("select distinct tenant_id from dyno_crm.pipeline")
        ]

        upgraded = run_runner(fresh_env, "setup")
        ran = run_runner(fresh_env, "run", "--tenant-id", tenant, "--threshold-days", "30")

        assert upgraded.returncode == ran.returncode == 0, upgraded.stderr + ran.stderr
        snoozed, rows = conn.execute(
            f"select sum(snoozed_deal_count), count(*) from {FACT_TABLE}"
        ).fetchone()
        assert (snoozed, rows > 0) == (0, True)
        assert (
            conn.execute(
                f"select count(*) filter (where cumulative_days_in_stage is null), count(*)"
                f" from {DEAL_TABLE}"
            ).fetchone()[0]
            == 0
        )
