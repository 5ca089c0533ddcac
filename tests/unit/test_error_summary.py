"""A failure's one line for report_run.error_message is written by the on-run-end hook (Jinja)
or, when dbt stopped before it, by the runner (Python): both give the same line."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest

from runner.domain.errors import failure_summary
from runner.domain.vocabulary import PROJECT_DIR

MESSAGES = [
    "Database Error in model report_deal_aging_fact (models/marts/per_run/report_deal_aging_fact.sql)\n"
    '  relation "dyno_crm.deal" does not exist\n'
    "  LINE 103: from dyno_crm.deal\n"
    "                 ^\n"
    "  compiled code at target/run/deal_aging/models/marts/per_run/report_deal_aging_fact.sql",
    'new row for relation "report_deal_aging_fact" violates check constraint "ck"\n'
    "DETAIL:  Failing row contains (6f1c..., 12, -3).",
    "canceling statement due to lock timeout",
    "Compilation Error in model x (models/x.sql)\n  Invalid var tenant_id: expected a UUID",
    "Compilation Error in model int_deal_aging_current_deals (models/x.sql)\n"
    "  Invalid var threshold_days: expected a whole number of days, got {{ 7 }}.\n"
    "  \n"
    "  > in macro deal_aging_invalid_var (macros/report_params.sql)\n"
    "  > called by macro deal_aging_day_count (macros/report_params.sql)",
    "",
]


class _Returned(Exception):
    """dbt's `return()` ends a macro with a value; this stands in for it."""


def _return(value: Any) -> None:
    raise _Returned(value)


def _jinja_summary(message: str) -> str:
    source = (PROJECT_DIR / "macros" / "report_run_lifecycle.sql").read_text()
    macro = re.search(
        r"{% macro deal_aging_error_summary\(message\) %}.*?{% endmacro %}", source, re.DOTALL
    )
    assert macro is not None
    template = jinja2.Environment(extensions=["jinja2.ext.do"]).from_string(
        macro.group(0) + "{{ deal_aging_error_summary(message) }}"
    )
    with pytest.raises(_Returned) as returned:
        template.render(message=message, modules=SimpleNamespace(re=re), **{"return": _return})
    return str(returned.value.args[0])


@pytest.mark.parametrize("message", MESSAGES)
def test_the_hook_and_the_runner_summarise_a_failure_alike(message: str) -> None:
    summary = failure_summary(message)
    assert _jinja_summary(message) == summary
    assert "\n" not in summary and "/" not in summary and "LINE" not in summary
    assert "Failing row" not in summary and "> in macro" not in summary
