"""Business-day aging: with aging_calendar business a run counts only the seconds of the tenant's
working days, in its time zone, and its limits are in working days. Every run is checked against a
Python count of the same seconds, deal by deal."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from dbt_common.invocation import get_invocation_id

from runner.dbt.invocation import DbtSettings
from runner.domain.params import build_params
from runner.domain.runs import RunRequest
from runner.store.tables import Tables
from runner.usecases.execute import execute_runs

from .report_checks import assert_run_matches_oracle, header, runs_of_invocation
from .runner_process import run_runner
from .support import DEAL_TABLE, FACT_TABLE, Dbt

PERIOD_END = "2026-10-20T15:30:00Z"
THRESHOLD = 20


def working_seconds(
    start: datetime, end: datetime, zone: ZoneInfo, weekend: set[int], holidays: set[date]
) -> float:
    """The seconds of [start, end) on local dates that are neither weekend days nor holidays."""
    total = 0.0
    day = start.astimezone(zone).date()
    while start < end and day <= end.astimezone(zone).date():
        begins = datetime.combine(day, time(), zone)
        ends = datetime.combine(day + timedelta(days=1), time(), zone)
        if day.isoweekday() not in weekend and day not in holidays:
            total += max(0.0, (min(end, ends) - max(start, begins)).total_seconds())
        day += timedelta(days=1)
    return total


def expected_deal_list(
    db: psycopg.Connection, tenant_id: str, zone: str = "UTC", weekend=(6, 7), holidays=()
) -> dict[uuid.UUID, tuple[Decimal, Decimal]]:
    """The at-risk deals of the tenant's run as of PERIOD_END, by Python's count: their days in
    stage and in cycle, rounded as the deal list stores them."""
    as_of = datetime.fromisoformat(PERIOD_END)
    rows = db.execute(
        "select d.id, s.entered_at, d.created_at from dyno_crm.deal_pipeline_stage_state s"
        " join dyno_crm.pipeline_stage p on p.id = s.pipeline_stage_id and p.tenant_id = s.tenant_id"
        " join dyno_crm.deal d on d.id = s.deal_id and d.tenant_id = s.tenant_id"
        " where s.tenant_id = %s and s.is_current"
        " and p.stage_state not in ('DONE_SUCCESS', 'DONE_FAILED') and s.entered_at < %s",
        (tenant_id, as_of),
    ).fetchall()
    clock = (ZoneInfo(zone), set(weekend), set(holidays))
    listed = {}
    for deal_id, entered_at, created_at in rows:
        in_stage = working_seconds(entered_at, as_of, *clock) / 86400
        if in_stage > THRESHOLD:
            in_cycle = working_seconds(created_at, as_of, *clock) / 86400
            listed[deal_id] = (round2(in_stage), round2(in_cycle))
    assert listed, "the case should put some deals at risk"
    return listed


def round2(days: float) -> Decimal:
    return Decimal(str(days)).quantize(Decimal("0.01"))


def deal_list(db: psycopg.Connection, run_id: Any) -> dict[uuid.UUID, tuple[Decimal, Decimal]]:
    rows = db.execute(
        f"select deal_id, days_in_stage, days_in_cycle from {DEAL_TABLE} where run_id = %s",
        (run_id,),
    ).fetchall()
    return {deal_id: (in_stage, in_cycle) for deal_id, in_stage, in_cycle in rows}


def assert_close(actual: dict, expected: dict) -> None:
    """The same deals; days equal to the hundredth, give or take one where Python's float and
    PostgreSQL's numeric round a half differently."""
    assert actual.keys() == expected.keys()
    for deal_id, days in expected.items():
        pairs = zip(actual[deal_id], days, strict=True)
        assert all(abs(a - e) <= Decimal("0.01") for a, e in pairs), deal_id


def dbt_run(dbt: Dbt, db: psycopg.Connection, dbt_vars: dict[str, Any]) -> dict[str, Any]:
    result = dbt.run(dbt_vars)
    assert result.success, result.exception
    [run] = runs_of_invocation(db, get_invocation_id())
    assert run["status"] == "SUCCEEDED", run["error_message"]
    return run


def test_dbt_run_ages_deals_in_working_days_monday_to_friday_utc_by_default(dbt, db, ids):
    tenant = ids.tenants[0]
    run = dbt_run(
        dbt,
        db,
        {
            "tenant_id": tenant,
            "threshold_days": THRESHOLD,
            "period_end": PERIOD_END,
            "aging_calendar": "business",
        },
    )

    assert run["input_params"]["aging_calendar"] == "business"
    assert_close(deal_list(db, run["run_id"]), expected_deal_list(db, tenant))
    plain = dbt_run(
        dbt, db, {"tenant_id": tenant, "threshold_days": THRESHOLD, "period_end": PERIOD_END}
    )
    assert plain["input_params"]["aging_calendar"] == "calendar"
    assert assert_run_matches_oracle(db, plain)
    # The same open deals in every stage, fewer of them at risk: weekends no longer count.
    totals = (
        f"select stage_id, total_deal_count, at_risk_deal_count from {FACT_TABLE}"
        " where run_id = %s order by stage_id"
    )
    business = db.execute(totals, (run["run_id"],)).fetchall()
    calendar = db.execute(totals, (plain["run_id"],)).fetchall()
    assert [row[:2] for row in business] == [row[:2] for row in calendar]
    assert sum(row[2] for row in business) < sum(row[2] for row in calendar)


def test_runner_and_worker_use_the_tenants_calendar_and_holidays(
    optional_tables, database_env, db, ids
):
    tenant = ids.tenants[1]
    holidays = [date(2026, 10, 19), date(2026, 10, 16), date(2026, 9, 30)]
    db.execute(
        "insert into dyno_crm.deal_aging_tenant_calendar (tenant_id, time_zone, weekend_days)"
        " values (%s, 'Asia/Dubai', '{5,6}')",
        (tenant,),
    )
    for holiday in holidays:
        db.execute(
            "insert into dyno_crm.deal_aging_holiday (tenant_id, holiday_date, name)"
            " values (%s, %s, 'holiday')",
            (tenant, holiday),
        )
    args = ["--tenant-id", tenant, "--threshold-days", str(THRESHOLD), "--period-end", PERIOD_END]

    ran = run_runner(database_env, "run", *args, "--aging-calendar", "business")
    queued = run_runner(database_env, "submit", *args, "--aging-calendar", "Business")
    assert ran.returncode == queued.returncode == 0, ran.stderr + queued.stderr
    worked = run_runner(database_env, "worker", "--exit-when-idle", "--poll-seconds", "0.2")
    assert worked.returncode == 0, worked.stderr

    expected = expected_deal_list(db, tenant, "Asia/Dubai", (5, 6), holidays)
    for run_id in (ran.stdout.strip(), queued.stdout.strip()):
        assert header(db, run_id)["input_params"]["aging_calendar"] == "business"
        assert_close(deal_list(db, run_id), expected)
    assert expected != expected_deal_list(db, tenant)


def test_one_invocation_computes_calendar_and_business_runs(database_env, db, ids):
    """The batching of workers: runs with different clocks in one dbt invocation each read theirs
    from their header."""
    tenant = uuid.UUID(ids.tenants[2])
    calendar, business = (
        RunRequest(
            tenant,
            build_params(
                threshold_days=str(THRESHOLD), period_end=PERIOD_END, aging_calendar=clock
            ),
        )
        for clock in ("calendar", "business")
    )

    results = execute_runs([calendar, business], DbtSettings(), Tables("dyno_crm"))

    assert [result.status for result in results] == ["SUCCEEDED", "SUCCEEDED"]
    assert assert_run_matches_oracle(db, header(db, calendar.run_id))
    assert_close(deal_list(db, business.run_id), expected_deal_list(db, str(tenant)))
