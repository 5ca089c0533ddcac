"""The runner (Python) and the analysts' dbt (Jinja) validate report parameters in two languages;
these tests run both over the same inputs and fail when they disagree on what to accept."""

from __future__ import annotations

import datetime
import re
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
import pytz

from runner.domain import params
from runner.domain.errors import BadInput
from runner.domain.vocabulary import PROJECT_DIR


class _Returned(Exception):
    """dbt's `return()` ends a macro with a value."""


class _Refused(Exception):
    """dbt's exceptions.raise_compiler_error."""


def _return(value: Any) -> None:
    raise _Returned(value)


def _refuse(message: str) -> None:
    raise _Refused(message)


def _jinja_accepts(macro: str, value: str) -> bool:
    """Whether the macro of macros/report_params.sql accepts the value as a --vars string."""
    source = (PROJECT_DIR / "macros" / "report_params.sql").read_text()
    template = jinja2.Environment(extensions=["jinja2.ext.do"]).from_string(
        source + "{{ " + macro + "('the_var', value, given=true) }}"
        if macro == "deal_aging_timestamp"
        else source + "{{ " + macro + "('the_var', value) }}"
    )
    context = {
        "value": value,
        "return": _return,
        "exceptions": SimpleNamespace(raise_compiler_error=_refuse),
        "modules": SimpleNamespace(re=re, datetime=datetime, pytz=pytz),
    }
    try:
        template.render(**context)
    except _Returned:
        return True
    except _Refused:
        return False
    raise AssertionError(f"{macro} neither returned nor refused")


def _python_accepts(parse: Any, value: str) -> bool:
    try:
        parse("--the-var", value)
    except BadInput:
        return False
    return True


CASES = {
    ("deal_aging_uuid", params.parse_uuid): [
        "6f1c3a2e-9b1d-4c1e-8f2a-0d9e8c7b6a5f",
        "6F1C3A2E-9B1D-4C1E-8F2A-0D9E8C7B6A5F",
        "not-a-uuid",
        "1 or 1=1",
        "6f1c3a2e9b1d4c1e8f2a0d9e8c7b6a5f0",
    ],
    ("deal_aging_day_count", params.parse_day_count): [
        "0",
        "30",
        "2147483647",
        "2147483648",
        "-3",
        "1.5",
        "x",
    ],
    ("deal_aging_timestamp", params.parse_timestamp): [
        "2026-01-31",
        "2026-01-31T00:00:00Z",
        "2026-01-31T10:00:00+02:00",
        "2026-01-31 10:00",
        "2026-02-29",
        "2024-02-29",
        "2026-02-30",
        "2026-13-01",
        "0999-12-31T00:00:00Z",
        "1000-01-01T00:00:00+14:00",
        "9998-12-31T23:59:59-14:00",
        "9999-01-01",
        "yesterday",
    ],
    ("deal_aging_principal_type", params.parse_principal_type): ["USER", "group", "ROLE", ""],
    ("deal_aging_breakdown", params.parse_breakdown): ["owner", "OWNER", "region"],
    ("deal_aging_snoozes", params.parse_snoozes): ["ignore", "HONOR", "Honor", "on", "snooze"],
    ("deal_aging_aging_calendar", params.parse_aging_calendar): [
        "calendar",
        "Business",
        "BUSINESS",
        "working",
        "business days",
    ],
    ("deal_aging_threshold_mode", params.parse_threshold_mode): [
        "fixed",
        "P75",
        "p90",
        "p50",
        "75",
    ],
    ("deal_aging_changes", params.parse_changes): ["ignore", "TRACK", "Track", "true", "on"],
    ("deal_aging_schema_name", params.parse_schema_name): [
        "dyno_crm",
        "_x1",
        "1abc",
        'crm"; drop',
        "a" * 63,
        "a" * 64,
    ],
}


@pytest.mark.parametrize(
    ("macro", "parse", "value"),
    [
        (macro, parse, value)
        for (macro, parse), values in CASES.items()
        for value in values
        if value
    ],
    ids=lambda part: part if isinstance(part, str) else "",
)
def test_both_sides_accept_the_same_values(macro: str, parse: Any, value: str) -> None:
    assert _jinja_accepts(macro, value) == _python_accepts(parse, value)
