"""The analysts' path: `dbt run --vars ...` alone produces complete, correct report runs.

Every run's facts are compared with the design's reference query, run directly."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dbt_common.invocation import get_invocation_id

from .report_checks import (
    DatasetIds,
    assert_run_matches_oracle,
    fact_rows,
    runs_of_invocation,
)
from .support import DEAL_TABLE, FACT_TABLE, REPORT_RUN_TABLE, Dbt

PARAMETER_CASES: dict[str, Callable[[DatasetIds], dict[str, Any]]] = {
    "threshold only": lambda ids: {"threshold_days": 30},
    "threshold zero": lambda ids: {"threshold_days": 0},
    "cycle threshold": lambda ids: {"threshold_days": 45, "cycle_threshold_days": 180},
    "pipeline filter": lambda ids: {"threshold_days": 14, "pipeline_id": ids.pipeline_id},
    "stage filter": lambda ids: {"threshold_days": 14, "stage_id": ids.open_stage_id},
    "user principal": lambda ids: {
        "threshold_days": 30,
        "principal_type": "USER",
        "principal_id": ids.owner_user_id,
    },
    "group principal": lambda ids: {
        "threshold_days": 30,
        "principal_type": "GROUP",
        "principal_id": ids.owner_group_id,
    },
    "period window": lambda ids: {
        "threshold_days": 7,
        "period_start": "2026-03-01T00:00:00Z",
        "period_end": "2026-09-01T00:00:00+02:00",
    },
    "period start only, as of now": lambda ids: {
        "threshold_days": 30,
        "period_start": "2026-06-01T00:00:00Z",
    },
    "period end only": lambda ids: {"threshold_days": 60, "period_end": "2026-10-01T12:30:00Z"},
    "zero open deals": lambda ids: {"threshold_days": 30, "stage_id": ids.terminal_stage_id},
    "every filter at once": lambda ids: {
        "threshold_days": 10,
        "cycle_threshold_days": 90,
        "pipeline_id": ids.pipeline_id,
        "principal_type": "USER",
        "principal_id": ids.owner_user_id,
        "period_start": "2025-01-01T00:00:00Z",
        "period_end": "2026-11-01T00:00:00Z",
    },
}


def run_report(dbt: Dbt, db: psycopg.Connection, dbt_vars: dict[str, Any]) -> list[dict]:
    result = dbt.run(dbt_vars)
    assert result.success, result.exception
    return runs_of_invocation(db, get_invocation_id())


def count(db: psycopg.Connection, table: str) -> int:
    return db.execute(f"select count(*) from {table}").fetchone()[0]


@pytest.mark.parametrize("case", PARAMETER_CASES)
def test_run_matches_the_seed_reference_query(case, dbt, db, ids):
    dbt_vars = {"tenant_id": ids.tenants[0], **PARAMETER_CASES[case](ids)}
    [run] = run_report(dbt, db, dbt_vars)

    assert run["status"] == "SUCCEEDED"
    assert run["finished_at"] is not None and run["error_message"] is None
    facts = assert_run_matches_oracle(db, run)
    if case == "zero open deals":
        assert facts == []
    else:
        assert facts, "the case should select some open deals of the dataset"


def test_without_tenant_every_tenant_gets_its_own_run(dbt, db, ids):
    runs = run_report(dbt, db, {"threshold_days": 21})

    assert sorted(str(run["tenant_id"]) for run in runs) == sorted(ids.tenants)
    assert len({run["run_id"] for run in runs}) == len(ids.tenants)
    assert len({run["generated_at"] for run in runs}) == 1
    for run in runs:
        assert run["status"] == "SUCCEEDED"
        assert assert_run_matches_oracle(db, run)


def test_header_records_parameters_and_period(dbt, db, ids):
    [run] = run_report(
        dbt,
        db,
        {
            "tenant_id": ids.tenants[1].upper(),
            "threshold_days": "12",
            "principal_type": "group",
            "principal_id": ids.owner_group_id,
            "period_start": "2026-01-01",
            "period_end": "2026-06-30T12:00:00+02:00",
        },
    )
    assert str(run["tenant_id"]) == ids.tenants[1]
    assert run["report_type"] == "deal_aging"
    assert run["input_params"] == {
        "source_schema": "dyno_crm",
        "threshold_days": 12,
        "cycle_threshold_days": None,
        "period_start": "2026-01-01T00:00:00+00:00",
        "period_end": "2026-06-30T12:00:00+02:00",
        "pipeline_id": None,
        "principal_type": "GROUP",
        "principal_id": ids.owner_group_id,
        "stage_id": None,
        "breakdown": None,
        "snoozes": "ignore",
        "aging_calendar": "calendar",
        "threshold_mode": "fixed",
        "changes": "ignore",
    }
    assert run["period_start"].isoformat() == "2026-01-01T00:00:00+00:00"
    assert (
        run["period_end"].timestamp()
        == run["period_end"].fromisoformat("2026-06-30T10:00:00+00:00").timestamp()
    )


def test_rerun_of_a_run_id_replaces_exactly_its_rows(dbt, db, ids):
    [kept] = run_report(dbt, db, {"tenant_id": ids.tenants[1], "threshold_days": 30})
    [rerun] = run_report(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30})
    kept_rows, original = fact_rows(db, kept["run_id"]), fact_rows(db, rerun["run_id"])
    # A stray row under the rerun's run_id, as a half-written earlier attempt might leave.
    db.execute(
        f"insert into {FACT_TABLE} select run_id, tenant_id, pipeline_id, principal_type,"
        " principal_id, gen_random_uuid(), threshold_days, cycle_threshold_days,"
        " at_risk_deal_count, at_risk_amount, avg_days_in_stage, median_days_in_stage,"
        f" total_deal_count, total_amount, percent_at_risk from {FACT_TABLE}"
        " where run_id = %s limit 1",
        (rerun["run_id"],),
    )

    result = dbt.run({"run_id": str(rerun["run_id"])})

    assert result.success, result.exception
    assert fact_rows(db, rerun["run_id"]) == original
    assert fact_rows(db, kept["run_id"]) == kept_rows


def test_rerun_that_now_finds_no_deals_leaves_no_rows(dbt, db, ids):
    [run] = run_report(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30})
    assert fact_rows(db, run["run_id"])
    db.execute(
        f"update {REPORT_RUN_TABLE} set input_params = input_params || %s::jsonb where run_id = %s",
        (f'{{"stage_id": "{ids.terminal_stage_id}"}}', run["run_id"]),
    )

    assert dbt.run({"run_id": str(run["run_id"])}).success
    assert fact_rows(db, run["run_id"]) == []


def test_given_run_id_recomputes_a_finished_run_and_closes_it(dbt, db, ids):
    run_id = uuid.uuid4()
    db.execute(
        f"insert into {REPORT_RUN_TABLE} (run_id, tenant_id, report_type, generated_at,"
        " input_params, status) values (%s, %s, 'deal_aging', now(), %s::jsonb, 'FAILED')",
        (run_id, ids.tenants[2], '{"threshold_days": 5}'),
    )

    assert dbt.run({"run_id": str(run_id)}).success

    [run] = db.execute(
        f"select status, executor, finished_at is not null from {REPORT_RUN_TABLE}"
        " where run_id = %s",
        (run_id,),
    ).fetchall()
    assert run == ("SUCCEEDED", "dbt", True)
    assert fact_rows(db, run_id)


def test_full_refresh_keeps_the_history(dbt, db, ids):
    run_report(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30})
    before = db.execute(
        f"select run_id, count(*) from {FACT_TABLE} group by 1 order by 1"
    ).fetchall()

    result = dbt.invoke("run", "--full-refresh", dbt_vars={"tenant_id": ids.tenants[1]})

    assert result.success, result.exception
    after = dict(db.execute(f"select run_id, count(*) from {FACT_TABLE} group by 1").fetchall())
    assert all(after.get(run_id) == rows for run_id, rows in before)


def test_grain_is_unique_with_nulls_equal(dbt, db, ids):
    [run] = run_report(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30})
    assert run["input_params"]["principal_type"] is None
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(
            f"insert into {FACT_TABLE} select * from {FACT_TABLE} where run_id = %s limit 1",
            (run["run_id"],),
        )


@pytest.mark.parametrize(
    "broken_row",
    [
        "at_risk_deal_count = total_deal_count + 1",
        "percent_at_risk = 1.5",
        "percent_at_risk = -0.1",
    ],
)
def test_database_checks_what_must_always_hold(broken_row, dbt, db, ids):
    [run] = run_report(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30})
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(f"update {FACT_TABLE} set {broken_row} where run_id = %s", (run["run_id"],))


def test_deleting_a_header_deletes_its_facts_and_deals(dbt, db, ids):
    [run] = run_report(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30})
    [other] = run_report(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30})
    deals_of = f"select count(*) from {DEAL_TABLE} where run_id = %s"
    assert db.execute(deals_of, (run["run_id"],)).fetchone()[0] > 0
    db.execute(f"delete from {REPORT_RUN_TABLE} where run_id = %s", (run["run_id"],))
    assert fact_rows(db, run["run_id"]) == []
    assert db.execute(deals_of, (run["run_id"],)).fetchone()[0] == 0
    assert fact_rows(db, other["run_id"]) != []
    assert db.execute(deals_of, (other["run_id"],)).fetchone()[0] > 0


def test_a_failing_model_fails_the_run_and_leaves_no_facts(dbt, db, ids):
    db.execute("alter table dyno_crm.deal rename to deal_moved_away")
    try:
        result = dbt.run({"tenant_id": ids.tenants[0], "threshold_days": 30})
    finally:
        db.execute("alter table dyno_crm.deal_moved_away rename to deal")

    assert not result.success
    [run] = runs_of_invocation(db, get_invocation_id())
    assert run["status"] == "FAILED" and run["finished_at"] is not None
    assert 'relation "dyno_crm.deal" does not exist' in run["error_message"]
    assert fact_rows(db, run["run_id"]) == []


@pytest.mark.parametrize("table", [FACT_TABLE, DEAL_TABLE])
def test_a_table_out_of_step_with_its_model_fails_the_run_and_keeps_its_rows(table, dbt, db, ids):
    [earlier] = run_report(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30})
    rows_before = count(db, table)
    db.execute(f"alter table {table} add column added_by_hand text")
    try:
        result = dbt.run({"tenant_id": ids.tenants[0], "threshold_days": 30})
    finally:
        db.execute(f"alter table {table} drop column added_by_hand")

    assert not result.success
    [run] = runs_of_invocation(db, get_invocation_id())
    assert run["status"] == "FAILED"
    assert "out of sync" in run["error_message"]
    assert count(db, table) == rows_before
    assert fact_rows(db, run["run_id"]) == []
    assert fact_rows(db, earlier["run_id"]) != []


BAD_VARS = {
    "tenant_id not a uuid": ({"tenant_id": "acme"}, "Invalid var tenant_id"),
    "quote in a uuid": (
        {"pipeline_id": "x'; drop table dyno_crm.deal; --"},
        "Invalid var pipeline_id",
    ),
    "negative threshold": ({"threshold_days": -1}, "Invalid var threshold_days"),
    "fractional threshold": ({"threshold_days": 1.5}, "Invalid var threshold_days"),
    "text cycle threshold": ({"cycle_threshold_days": "ten"}, "Invalid var cycle_threshold_days"),
    "principal type": (
        {"principal_type": "TEAM", "principal_id": str(uuid.uuid4())},
        "Invalid var principal_type",
    ),
    "principal type without id": ({"principal_type": "USER"}, "principal_type and principal_id"),
    "principal id without type": (
        {"principal_id": str(uuid.uuid4())},
        "principal_type and principal_id",
    ),
    "timestamp": ({"period_start": "last tuesday"}, "Invalid var period_start"),
    "impossible date": ({"period_end": "2026-02-30"}, "Invalid var period_end"),
    "period order": ({"period_start": "2026-05-01", "period_end": "2026-04-01"}, "period_start"),
    "run_id": ({"run_id": "1 or 1=1"}, "Invalid var run_id"),
    "unknown run_id": ({"run_id": str(uuid.uuid4())}, "is not a finished deal_aging run"),
    "source schema": ({"source_schema": 'crm"; drop'}, "Invalid var source_schema"),
    "breakdown": ({"breakdown": "region"}, "Invalid var breakdown"),
    "breakdown with a principal": (
        {"breakdown": "owner", "principal_type": "USER", "principal_id": str(uuid.uuid4())},
        "breakdown and principal_type",
    ),
}


@pytest.mark.parametrize("case", BAD_VARS)
def test_bad_var_fails_naming_it_and_writes_nothing(case, dbt, db, dataset):
    dbt_vars, message = BAD_VARS[case]
    runs_before, facts_before = count(db, REPORT_RUN_TABLE), count(db, FACT_TABLE)

    result = dbt.run(dbt_vars)

    assert not result.success
    assert message in str(result.exception or result.result)
    assert (count(db, REPORT_RUN_TABLE), count(db, FACT_TABLE)) == (runs_before, facts_before)


def test_cli_bad_var_exits_non_zero_with_the_reason(dbt, db):
    completed = subprocess.run(
        [
            Path(sys.executable).with_name("dbt"),
            "run",
            *dbt.project_args,
            "--vars",
            "{threshold_days: -3}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode != 0
    assert (
        "Invalid var threshold_days: expected a whole number of days, 0 or more, got -3."
        in completed.stdout
    )


@pytest.mark.parametrize(
    "command", [["compile"], ["test", "--exclude", "test_type:unit"], ["docs", "generate"]]
)
def test_commands_that_build_no_report_open_no_runs(command, dbt, db, dataset):
    run_report(dbt, db, {"threshold_days": 30})
    runs_before = count(db, REPORT_RUN_TABLE)

    result = dbt.invoke(*command)

    assert result.success, result.exception
    assert count(db, REPORT_RUN_TABLE) == runs_before


def test_dbt_build_runs_every_model_and_test(dbt, db):
    result = dbt.invoke("build")
    assert result.success, result.exception
    statuses = {r.node.resource_type: r.status for r in result.result.results}
    assert {"model", "test", "unit_test"} <= set(statuses)
