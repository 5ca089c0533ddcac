"""Acting on the report: the at-risk deal list, per-stage limits and the owner breakdown."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from dbt_common.invocation import get_invocation_id

from .report_checks import (
    assert_run_matches_oracle,
    fact_rows,
    oracle_rows,
)
from .runner_process import run_runner
from .support import DEAL_TABLE, FACT_TABLE, Dbt


def one_run(dbt: Dbt, db: psycopg.Connection, dbt_vars: dict) -> dict:
    result = dbt.run(dbt_vars)
    assert result.success, result.exception
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        [run] = cur.execute(
            "select * from dyno_crm.report_run where dbt_invocation_id = %s", (get_invocation_id(),)
        ).fetchall()
    return run


def deal_totals(db: psycopg.Connection, run_id) -> list[tuple]:
    return db.execute(
        f"select pipeline_id, stage_id, principal_type, principal_id, count(*),"
        f" sum(coalesce(amount, 0)) from {DEAL_TABLE} where run_id = %s"
        " group by 1, 2, 3, 4 order by 1, 2, 3, 4",
        (run_id,),
    ).fetchall()


def at_risk_totals(db: psycopg.Connection, run_id) -> list[tuple]:
    return db.execute(
        f"select pipeline_id, stage_id, principal_type, principal_id, at_risk_deal_count,"
        f" at_risk_amount from {FACT_TABLE} where run_id = %s and at_risk_deal_count > 0"
        " order by 1, 2, 3, 4",
        (run_id,),
    ).fetchall()


@pytest.mark.parametrize(
    "dbt_vars",
    [
        {"threshold_days": 30},
        {"threshold_days": 20, "cycle_threshold_days": 200},
        {"threshold_days": 15, "breakdown": "owner"},
    ],
    ids=["stage limit", "stage and cycle limits", "owner breakdown"],
)
def test_deal_list_adds_up_to_the_facts(dbt_vars, dbt, db, ids):
    run = one_run(dbt, db, {"tenant_id": ids.tenants[0], **dbt_vars})

    assert deal_totals(db, run["run_id"]) == at_risk_totals(db, run["run_id"]) != []
    reasons = dict(
        db.execute(
            f"select at_risk_reason, count(*) from {DEAL_TABLE} where run_id = %s group by 1",
            (run["run_id"],),
        ).fetchall()
    )
    assert set(reasons) <= {"STAGE", "CYCLE", "BOTH"}
    if "cycle_threshold_days" in dbt_vars:
        assert "CYCLE" in reasons or "BOTH" in reasons
    assert dbt.invoke("test", "--select", "assert_deal_list_adds_up_to_the_facts").success


def test_show_deals_lists_them_worst_first(database_env, db, ids):
    done = run_runner(database_env, "run", "--tenant-id", ids.tenants[0], "--threshold-days", "30")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]

    shown = run_runner(database_env, "show", run_id, "--deals", "--json")

    assert shown.returncode == 0, shown.stderr
    deals = json.loads(shown.stdout)["deals"]
    assert len(deals) == sum(row[4] for row in at_risk_totals(db, run_id)) > 1
    past_limit = [d["days_past_limit"] for d in deals]
    assert past_limit == sorted(past_limit, reverse=True)
    table = run_runner(database_env, "show", run_id, "--deals")
    assert deals[0]["deal_name"] in table.stdout


@pytest.fixture
def stage_limits(dbt: Dbt, db: psycopg.Connection):
    assert dbt.invoke("run-operation", "deal_aging_create_stage_threshold_table").success
    yield "dyno_crm.deal_aging_stage_threshold"
    db.execute("drop table dyno_crm.deal_aging_stage_threshold")


def test_a_stage_limit_replaces_the_run_threshold(stage_limits, dbt, db, ids):
    db.execute(
        f"insert into {stage_limits} (tenant_id, pipeline_stage_id, threshold_days) values (%s, %s, 3)",
        (ids.tenants[0], ids.open_stage_id),
    )
    run = one_run(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 60})

    thresholds = dict(
        db.execute(
            f"select stage_id, threshold_days from {FACT_TABLE} where run_id = %s", (run["run_id"],)
        ).fetchall()
    )
    assert thresholds.pop(uuid.UUID(ids.open_stage_id)) == 3
    assert set(thresholds.values()) == {60}
    # The limited stage's row equals the reference query run with that stage's limit.
    limited = [row for row in fact_rows(db, run["run_id"]) if str(row[3]) == ids.open_stage_id]
    reference = oracle_rows(
        db,
        run
        | {
            "input_params": run["input_params"]
            | {"threshold_days": 3, "stage_id": ids.open_stage_id}
        },
    )
    assert limited == reference
    assert deal_totals(db, run["run_id"]) == at_risk_totals(db, run["run_id"])


def test_without_limits_or_breakdown_the_report_is_the_seed_report(dbt, db, ids):
    run = one_run(
        dbt, db, {"tenant_id": ids.tenants[1], "threshold_days": 30, "cycle_threshold_days": 90}
    )
    assert assert_run_matches_oracle(db, run)


def test_owner_breakdown_splits_each_stage_by_owning_user(dbt, db, ids):
    plain = one_run(dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30})
    by_owner = one_run(
        dbt, db, {"tenant_id": ids.tenants[0], "threshold_days": 30, "breakdown": "owner"}
    )

    assert by_owner["input_params"]["breakdown"] == "owner"
    rows = db.execute(
        f"select principal_type, principal_id, stage_id, total_deal_count from {FACT_TABLE}"
        " where run_id = %s",
        (by_owner["run_id"],),
    ).fetchall()
    assert {row[0] for row in rows} == {"USER"}
    assert any(row[1] is None for row in rows), (
        "deals without an owning user get a row of their own"
    )
    per_owner = dict(
        ((str(owner) if owner else None, str(stage)), count)
        for owner, stage, count in db.execute(
            "select d.owned_by_user_id, s.pipeline_stage_id, count(*)"
            " from dyno_crm.deal_pipeline_stage_state s"
            " join dyno_crm.deal d on d.id = s.deal_id and d.tenant_id = s.tenant_id"
            " join dyno_crm.pipeline_stage p on p.id = s.pipeline_stage_id and p.tenant_id = s.tenant_id"
            " where s.tenant_id = %s and s.is_current"
            " and p.stage_state not in ('DONE_SUCCESS', 'DONE_FAILED') group by 1, 2",
            (ids.tenants[0],),
        )
    )
    assert {(str(r[1]) if r[1] else None, str(r[2])): r[3] for r in rows} == per_owner
    totals = "select stage_id, sum(total_deal_count), sum(at_risk_deal_count), sum(at_risk_amount) from {} where run_id = %s group by 1 order by 1"
    assert (
        db.execute(totals.format(FACT_TABLE), (by_owner["run_id"],)).fetchall()
        == db.execute(totals.format(FACT_TABLE), (plain["run_id"],)).fetchall()
    )


def test_trend_compares_each_run_with_the_previous_run_of_the_same_parameters(dbt, db, ids):
    same = {"tenant_id": ids.tenants[2], "threshold_days": 11, "period_end": "2026-10-01T00:00:00Z"}
    first = one_run(dbt, db, same)
    other = one_run(dbt, db, same | {"threshold_days": 12})
    second = one_run(dbt, db, same)
    assert dbt.invoke("run", "--select", "report_deal_aging_trend").success

    trend = db.execute(
        "select run_id, previous_run_id, at_risk_deal_count_change, at_risk_amount_change"
        " from dyno_crm.report_deal_aging_trend where run_id = any(%s)",
        ([first["run_id"], other["run_id"], second["run_id"]],),
    ).fetchall()

    by_run: dict = {}
    for run_id, previous, count_change, amount_change in trend:
        by_run.setdefault(run_id, set()).add((previous, count_change, amount_change))
    # The same parameters and the same as-of instant: the second run changes nothing.
    assert by_run[second["run_id"]] == {(first["run_id"], 0, 0)}
    assert {previous for previous, _, _ in by_run[other["run_id"]]} != {first["run_id"]}
    assert len(trend) == 3 * len(fact_rows(db, first["run_id"]))
