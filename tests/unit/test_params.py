"""runner.params without a database: every value a run takes is checked before anything is
written, and the checks agree with the dbt macros' (macros/report_params.sql)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from runner.domain.errors import BadInput
from runner.domain.params import (
    MAX_INTEGER,
    build_params,
    parse_breakdown,
    parse_day_count,
    parse_principal_type,
    parse_schema_name,
    parse_timestamp,
    parse_uuid,
)
from runner.store.tables import Tables

UUID_TEXT = "6f1c1b2e-0c4d-4f7a-9a53-2f5c7d1e8b90"


def test_uuid_is_parsed_whatever_its_case() -> None:
    assert parse_uuid("--tenant-id", UUID_TEXT.upper()) == UUID(UUID_TEXT)


@pytest.mark.parametrize("text", ["acme", "", "1 or 1=1", UUID_TEXT + "'; --"])
def test_uuid_refuses_anything_else(text: str) -> None:
    with pytest.raises(BadInput, match="--tenant-id: expected a UUID"):
        parse_uuid("--tenant-id", text)


@pytest.mark.parametrize("text", ["0", "30", str(MAX_INTEGER)])
def test_day_count_takes_whole_numbers_postgresql_holds(text: str) -> None:
    assert parse_day_count("--threshold-days", text) == int(text)


@pytest.mark.parametrize("text", ["-3", "1.5", "ten", "", " 30", str(MAX_INTEGER + 1), "٣"])
def test_day_count_refuses_anything_else(text: str) -> None:
    with pytest.raises(BadInput, match="--threshold-days: expected a whole number of days"):
        parse_day_count("--threshold-days", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31T00:00:00Z", datetime(2026, 1, 31, tzinfo=UTC)),
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC)),
        (
            "2026-06-30T12:00:00+02:00",
            datetime(2026, 6, 30, 12, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_timestamp_without_a_zone_is_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp("--period-start", text)
    assert parsed == expected and parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("text", ["last tuesday", "2026-02-30", "2026-13-01", ""])
def test_timestamp_refuses_what_is_not_one(text: str) -> None:
    with pytest.raises(BadInput, match="--period-start: expected an ISO 8601 timestamp"):
        parse_timestamp("--period-start", text)


@pytest.mark.parametrize(
    "text",
    [
        "1000-01-01T00:00:00+14:00",
        "1000-01-01T00:00:00-14:00",
        "9998-12-31T23:59:59+14:00",
        "9998-12-31T23:59:59.999999-14:00",
    ],
)
def test_the_extreme_years_accepted_convert_to_utc_on_any_offset(text: str) -> None:
    parsed = parse_timestamp("--period-end", text)
    in_utc = parsed.astimezone(UTC)
    assert 999 <= in_utc.year <= 9999
    assert in_utc.isoformat()


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+14:00",
        "0999-12-31T23:59:59",
        "9999-01-01",
        "9999-12-31T23:59:59-14:00",
    ],
)
def test_timestamp_year_must_be_from_1000_to_9998(text: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse_timestamp("--period-start", text)
    assert str(refused.value) == (
        f"--period-start: expected a timestamp with a year from 1000 to 9998, got {text!r}"
    )


@pytest.mark.parametrize("text", ["user", "USER", "Group"])
def test_principal_type_is_upper_cased(text: str) -> None:
    assert parse_principal_type("--principal-type", text) == text.upper()


def test_principal_type_refuses_others() -> None:
    with pytest.raises(BadInput, match="expected USER or GROUP"):
        parse_principal_type("--principal-type", "TEAM")


def test_snoozes_are_ignored_unless_honored_in_any_case() -> None:
    assert build_params(threshold_days="30").snoozes == "ignore"
    assert build_params(threshold_days="30", snoozes="Honor").input_params()["snoozes"] == "honor"


def test_aging_is_in_calendar_days_unless_business_days_are_asked() -> None:
    assert build_params(threshold_days="30").aging_calendar == "calendar"
    business = build_params(threshold_days="30", aging_calendar="BUSINESS")
    assert business.input_params()["aging_calendar"] == "business"


def test_breakdown_is_owner_or_nothing() -> None:
    assert parse_breakdown("--breakdown", "Owner") == "owner"
    with pytest.raises(BadInput, match="expected owner"):
        parse_breakdown("--breakdown", "region")


@pytest.mark.parametrize("text", ["dyno_crm", "_x", "A1", "s" * 63])
def test_schema_name_takes_plain_names(text: str) -> None:
    assert parse_schema_name("--source-schema", text) == text


@pytest.mark.parametrize(
    "text",
    ["", "1crm", 'x"; drop table y; --', "crm.x", "crm x", "crmé", "s" * 64, "crm\n", "Ⅸ"],
)
def test_schema_name_refuses_anything_else(text: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse_schema_name("--source-schema", text)
    assert str(refused.value) == f"--source-schema: expected a plain schema name, got {text!r}"
    assert "\n" not in str(refused.value)


def test_report_schema_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEAL_AGING_SCHEMA", raising=False)
    assert Tables.from_environment().schema == "dyno_crm"
    monkeypatch.setenv("DEAL_AGING_SCHEMA", "reports")
    assert Tables.from_environment().schema == "reports"


@pytest.mark.parametrize("schema", ['x"; drop table y; --', "", "crm.x", "9lives"])
def test_unsafe_report_schema_is_bad_input(monkeypatch: pytest.MonkeyPatch, schema: str) -> None:
    monkeypatch.setenv("DEAL_AGING_SCHEMA", schema)
    with pytest.raises(BadInput) as refused:
        Tables.from_environment()
    assert refused.value.exit_code == 2
    assert str(refused.value).startswith("DEAL_AGING_SCHEMA: expected a plain schema name")


def test_build_params_validates_and_converts_every_value() -> None:
    params = build_params(
        threshold_days="12",
        cycle_threshold_days="180",
        period_start="2026-01-01",
        period_end="2026-06-30T12:00:00+02:00",
        pipeline_id=UUID_TEXT,
        principal_type="group",
        principal_id=UUID_TEXT.upper(),
    )
    assert params.input_params() == {
        "threshold_days": 12,
        "cycle_threshold_days": 180,
        "period_start": "2026-01-01T00:00:00+00:00",
        "period_end": "2026-06-30T12:00:00+02:00",
        "pipeline_id": UUID_TEXT,
        "principal_type": "GROUP",
        "principal_id": UUID_TEXT,
        "stage_id": None,
        "breakdown": None,
        "snoozes": "ignore",
        "aging_calendar": "calendar",
        "threshold_mode": "fixed",
        "changes": "ignore",
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"principal_type": "USER"}, "--principal-type and --principal-id: give both or neither"),
        ({"principal_id": UUID_TEXT}, "--principal-type and --principal-id: give both or neither"),
        (
            {"breakdown": "owner", "principal_type": "USER", "principal_id": UUID_TEXT},
            "--breakdown owner and --principal-type",
        ),
        (
            {"period_start": "2026-05-01", "period_end": "2026-04-01"},
            "--period-start (2026-05-01T00:00:00+00:00) must be before --period-end",
        ),
        (
            {"period_start": "2026-05-01T02:00:00+02:00", "period_end": "2026-05-01T00:00:00Z"},
            "must be before --period-end",
        ),
        ({"period_end": "9999-12-31T23:59:59-14:00"}, "--period-end: expected a timestamp"),
        ({"cycle_threshold_days": "-1"}, "--cycle-threshold-days: expected a whole number"),
        ({"snoozes": "on"}, "--snoozes: expected ignore or honor, got 'on'"),
        ({"aging_calendar": "work"}, "--aging-calendar: expected calendar or business, got 'work'"),
        ({"threshold_mode": "p50"}, "--threshold-mode: expected fixed or p75 or p90, got 'p50'"),
        ({"changes": "on"}, "--changes: expected ignore or track, got 'on'"),
        (
            {"threshold_mode": "p90", "aging_calendar": "business"},
            "--threshold-mode p90 and --aging-calendar business: limits learned from history",
        ),
    ],
)
def test_build_params_names_the_first_bad_value(values: dict[str, str], message: str) -> None:
    with pytest.raises(BadInput, match=re.escape(message)):
        build_params(threshold_days="30", **values)


def test_build_params_accepts_the_widest_period() -> None:
    params = build_params(
        threshold_days="30",
        period_start="1000-01-01T00:00:00+14:00",
        period_end="9998-12-31T23:59:59-14:00",
    )
    assert params.period_start is not None and params.period_end is not None
    assert params.period_start.astimezone(UTC) < params.period_end.astimezone(UTC)
