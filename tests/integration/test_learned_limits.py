"""Limits learned from history: with threshold_mode p75 or p90 each stage's limit is that
percentile of its completed visits of the year before the as-of instant, where it has 5 or more;
`python -m runner suggest-limits` prints them and --write sets them; the deal list has the days
a deal spent in its stage over all its visits."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from dbt_common.invocation import get_invocation_id

from runner.dbt.invocation import DbtSettings
from runner.domain.params import build_params
from runner.domain.runs import RunRequest
from runner.store.tables import Tables
from runner.usecases.execute import execute_runs

from .report_checks import assert_run_matches_oracle, fact_rows, header, runs_of_invocation
from .runner_process import run_runner
from .support import DEAL_TABLE, FACT_TABLE, Dbt

PERIOD_END = "2026-10-20T00:00:00Z"
THRESHOLD = 30
THRESHOLDS = "dyno_crm.deal_aging_stage_threshold"


def percentile(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def learned_limits(db: psycopg.Connection, tenant_id: str, as_of: datetime, fraction: float):
    """Per stage of the tenant, the limit a learning run takes, by Python's count: the percentile
    of the visits that ended in the 365 days before as_of, rounded up, from 5 visits on."""
    visits: dict[uuid.UUID, list[float]] = {}
    for stage_id, entered_at, exited_at in db.execute(
        "select pipeline_stage_id, entered_at, exited_at from dyno_crm.deal_pipeline_stage_state"
        " where tenant_id = %s and exited_at >= %s and exited_at < %s",
        (tenant_id, as_of - timedelta(days=365), as_of),
    ):
        days = max(0.0, (exited_at - entered_at).total_seconds() / 86400)
        visits.setdefault(stage_id, []).append(days)
    return {
        stage_id: math.ceil(percentile(days, fraction))
        for stage_id, days in visits.items()
        if len(days) >= 5
    }


def applied_limits(db: psycopg.Connection, run_id: Any) -> dict[uuid.UUID, int]:
    return dict(
        db.execute(
            f"select stage_id, threshold_days from {FACT_TABLE} where run_id = %s", (run_id,)
        ).fetchall()
    )


def assert_learned(db: psycopg.Connection, run_id: Any, tenant_id: str, fraction: float) -> None:
    learned = learned_limits(db, tenant_id, datetime.fromisoformat(PERIOD_END), fraction)
    applied = applied_limits(db, run_id)
    assert applied and any(stage in learned for stage in applied)
    assert applied == {stage: learned.get(stage, THRESHOLD) for stage in applied}


def dbt_run(dbt: Dbt, db: psycopg.Connection, dbt_vars: dict[str, Any]) -> dict[str, Any]:
    result = dbt.run(dbt_vars)
    assert result.success, result.exception
    [run] = runs_of_invocation(db, get_invocation_id())
    assert run["status"] == "SUCCEEDED", run["error_message"]
    return run


def test_dbt_run_learns_each_stages_limit_from_its_visits(dbt, db, ids):
    tenant = ids.tenants[0]
    base = {"tenant_id": tenant, "threshold_days": THRESHOLD, "period_end": PERIOD_END}
    learning = dbt_run(dbt, db, base | {"threshold_mode": "P75"})
    fixed = dbt_run(dbt, db, base)

    assert learning["input_params"]["threshold_mode"] == "p75"
    assert_learned(db, learning["run_id"], tenant, 0.75)
    assert fixed["input_params"]["threshold_mode"] == "fixed"
    assert assert_run_matches_oracle(db, fixed)
    # The deal list adds up to the facts whatever the limits, and counts every visit to the stage.
    assert dbt.invoke("test", "--select", "assert_deal_list_adds_up_to_the_facts").success
    for run in (learning, fixed):
        assert not db.execute(
            f"select 1 from {DEAL_TABLE} where run_id = %s"
            " and cumulative_days_in_stage < days_in_stage",
            (run["run_id"],),
        ).fetchall()


def test_cumulative_days_add_the_earlier_visits_to_the_stage(dbt, db, ids):
    tenant = ids.tenants[0]
    run = dbt_run(dbt, db, {"tenant_id": tenant, "threshold_days": 0, "period_end": PERIOD_END})
    as_of = datetime.fromisoformat(PERIOD_END)
    listed = db.execute(
        f"select deal_id, stage_id, stage_entered_at, cumulative_days_in_stage from {DEAL_TABLE}"
        " where run_id = %s",
        (run["run_id"],),
    ).fetchall()
    for deal_id, stage_id, entered_at, cumulative in listed:
        earlier = db.execute(
            "select entered_at, exited_at from dyno_crm.deal_pipeline_stage_state"
            " where tenant_id = %s and deal_id = %s and pipeline_stage_id = %s"
            " and not is_current and exited_at is not null and entered_at < %s",
            (tenant, deal_id, stage_id, as_of),
        ).fetchall()
        seconds = sum((min(out, as_of) - start).total_seconds() for start, out in earlier)
        expected = (max(0.0, (as_of - entered_at).total_seconds()) + seconds) / 86400
        assert abs(float(cumulative) - expected) <= 0.006, deal_id
    assert listed


@pytest.fixture
def stage_thresholds(optional_tables, db: psycopg.Connection) -> Iterator[str]:
    yield THRESHOLDS
    db.execute(f"delete from {THRESHOLDS}")


def test_suggest_limits_prints_and_writes_the_stages_limits(
    stage_thresholds, database_env, db, ids
):
    tenant = ids.tenants[1]
    shown = run_runner(database_env, "suggest-limits", "--tenant-id", tenant, "--json")
    assert shown.returncode == 0, shown.stderr
    stages = json.loads(shown.stdout)
    learned = learned_limits(db, tenant, db.execute("select now()").fetchone()[0], 0.9)
    assert {
        uuid.UUID(s["stage_id"]): s["p90_limit_days"] for s in stages if s["p90_limit_days"]
    } == learned

    written = run_runner(
        database_env, "suggest-limits", "--tenant-id", tenant, "--percentile", "90", "--write"
    )
    assert written.returncode == 0, written.stderr
    assert f"{len(learned)} stage limit(s) set" in written.stderr
    assert (
        dict(
            db.execute(
                f"select pipeline_stage_id, threshold_days from {stage_thresholds} where tenant_id = %s",
                (tenant,),
            ).fetchall()
        )
        == learned
    )
    # A fixed run now takes them as the stages' own limits.
    ran = run_runner(database_env, "run", "--tenant-id", tenant, "--threshold-days", "30")
    assert ran.returncode == 0, ran.stderr
    applied = applied_limits(db, ran.stdout.strip())
    assert applied == {stage: learned.get(stage, 30) for stage in applied}


def test_runner_worker_and_a_mixed_invocation_learn_their_limits(database_env, db, ids):
    tenant = ids.tenants[2]
    args = ["--tenant-id", tenant, "--threshold-days", str(THRESHOLD), "--period-end", PERIOD_END]
    ran = run_runner(database_env, "run", *args, "--threshold-mode", "p90")
    queued = run_runner(database_env, "submit", *args, "--threshold-mode", "p75")
    assert ran.returncode == queued.returncode == 0, ran.stderr + queued.stderr
    worked = run_runner(database_env, "worker", "--exit-when-idle", "--poll-seconds", "0.2")
    assert worked.returncode == 0, worked.stderr
    assert_learned(db, ran.stdout.strip(), tenant, 0.9)
    assert_learned(db, queued.stdout.strip(), tenant, 0.75)

    # One invocation, as a batching worker runs it: each run reads its mode from its header.
    fixed, learning = (
        RunRequest(
            uuid.UUID(tenant),
            build_params(threshold_days=str(THRESHOLD), period_end=PERIOD_END, threshold_mode=mode),
        )
        for mode in ("fixed", "p90")
    )
    results = execute_runs([fixed, learning], DbtSettings(), Tables("dyno_crm"))
    assert [result.status for result in results] == ["SUCCEEDED", "SUCCEEDED"]
    assert assert_run_matches_oracle(db, header(db, fixed.run_id))
    assert fact_rows(db, learning.run_id) == fact_rows(db, ran.stdout.strip())


def test_learned_limits_and_business_days_are_refused_together(database_env, dbt, ids):
    done = run_runner(
        database_env,
        "run",
        "--tenant-id",
        ids.tenants[0],
        "--threshold-days",
        "3",
        "--threshold-mode",
        "p75",
        "--aging-calendar",
        "business",
    )
    assert done.returncode == 2 and "limits learned from history" in done.stderr
    result = dbt.run({"threshold_days": 3, "threshold_mode": "p90", "aging_calendar": "business"})
    assert not result.success
    assert "Invalid vars threshold_mode and aging_calendar" in str(result.exception)
