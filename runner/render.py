"""Readable tables for people and JSON for machines."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

# What a terminal acts on instead of printing: C0, DEL, C1, line separators and bidi controls.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def printable(text: str) -> str:
    """The text with every control character written as its escape (\\x1b, \\t, \\n, \\u202e), so
    CRM text cannot drive the terminal and one row stays one line. Backslashes stay as they are."""
    return _UNPRINTABLE.sub(lambda match: _escape(match.group()), text)


def _escape(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def first_line(text: str) -> str:
    """The first line of a message (PostgreSQL's go on with context lines), printable."""
    return printable(text.strip().split("\n", 1)[0])


def to_json(value: Any) -> str:
    return json.dumps(value, default=_json_default, indent=2)


def _json_default(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int] | None = None
) -> str:
    """A plain-text table; the columns whose index is in `right` are right-aligned (numbers)."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    right = right or set()

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    if isinstance(value, Decimal):
        return f"{value:,}"
    return printable(str(value))


def percent(fraction: Decimal | None) -> str:
    return "" if fraction is None else f"{fraction * 100:.1f}%"


def facts_table(facts: Sequence[dict[str, Any]]) -> str:
    headers = [
        "pipeline",
        "stage",
        "at risk",
        "at-risk amount",
        "avg days",
        "median days",
        "deals",
        "amount",
        "% at risk",
    ]
    rows = [
        [
            f["pipeline_name"] or f["pipeline_id"],
            f["stage_name"] or f["stage_id"],
            f["at_risk_deal_count"],
            f["at_risk_amount"],
            f["avg_days_in_stage"],
            f["median_days_in_stage"],
            f["total_deal_count"],
            f["total_amount"],
            percent(f["percent_at_risk"]),
        ]
        for f in facts
    ]
    if facts:
        at_risk = sum(f["at_risk_deal_count"] for f in facts)
        deals = sum(f["total_deal_count"] for f in facts)
        rows.append(
            [
                "total",
                "",
                at_risk,
                sum(f["at_risk_amount"] for f in facts),
                "",
                "",
                deals,
                sum(f["total_amount"] for f in facts),
                percent(Decimal(at_risk) / deals),
            ]
        )
    return table(headers, rows, right=set(range(2, 9)))


def runs_table(runs: Sequence[dict[str, Any]]) -> str:
    headers = [
        "run_id",
        "tenant_id",
        "status",
        "generated_at",
        "finished_at",
        "threshold",
        "fact rows",
        "error",
    ]
    rows = [
        [
            r["run_id"],
            r["tenant_id"],
            r["status"],
            r["generated_at"],
            r["finished_at"],
            (r["input_params"] or {}).get("threshold_days"),
            r["fact_rows"],
            (r["error_message"] or "")[:60],
        ]
        for r in runs
    ]
    return table(headers, rows, right={5, 6})


def run_header(run: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v}" for k, v in (run["input_params"] or {}).items() if v is not None)
    lines = [
        f"run {_cell(run['run_id'])}  {_cell(run['status'])}",
        f"tenant     {_cell(run['tenant_id'])}",
        f"generated  {_cell(run['generated_at'])}   finished {_cell(run['finished_at']) or '-'}",
        f"parameters {printable(params)}",
    ]
    if run["error_message"]:
        lines.append(f"error      {printable(run['error_message'])}")
    return "\n".join(lines)


def deals_table(deals: Sequence[dict[str, Any]]) -> str:
    """The listed deals; when some are snoozed (not at risk), two more columns say until when
    and why."""
    snoozed = any(d.get("is_snoozed") for d in deals)
    headers = [
        "deal",
        "pipeline",
        "stage",
        "amount",
        "days in stage",
        "days open",
        "limit",
        "why",
        "owner",
        *(["snoozed until", "snooze reason"] if snoozed else []),
    ]
    rows = [
        [
            d["deal_name"],
            d["pipeline_name"] or d["pipeline_id"],
            d["stage_name"] or d["stage_id"],
            d["amount"],
            d["days_in_stage"],
            d["days_in_cycle"],
            d["threshold_days"],
            d["at_risk_reason"],
            d["owned_by_user_id"],
            *([d.get("snoozed_until"), d.get("snooze_reason")] if snoozed else []),
        ]
        for d in deals
    ]
    return table(headers, rows, right={3, 4, 5, 6})


def changes_table(changes: Sequence[dict[str, Any]]) -> str:
    """What changed since the previous run, deal by deal."""
    headers = ["change", "deal", "pipeline", "stage", "amount", "at risk since", "why recovered"]
    rows = [
        [
            c["change_type"],
            c["deal_name"],
            c["pipeline_name"] or c["pipeline_id"],
            c["stage_name"] or c["stage_id"],
            c["amount"],
            c["first_flagged_at"],
            c["recovery_reason"],
        ]
        for c in changes
    ]
    previous = changes[0]["previous_run_id"]
    since = f"since run {previous}" if previous else "no previous run: every at-risk deal is new"
    return f"Changes ({since})\n" + table(headers, rows, right={4})


def stage_limits_table(stages: Sequence[dict[str, Any]], percentile: str) -> str:
    """Per stage: its completed visits of the last 365 days, their percentiles, and the limit
    learned at `percentile` (none below 5 visits)."""
    if not stages:
        return "(no stage visit of this tenant ended in the last 365 days)"
    headers = ["pipeline", "stage", "visits", "p50 days", "p75 days", "p90 days", "limit"]
    rows = [
        [
            s["pipeline_id"],
            s["stage_name"] or s["stage_id"],
            s["completed_visit_count"],
            s["p50_visit_days"],
            s["p75_visit_days"],
            s["p90_visit_days"],
            s[f"p{percentile}_limit_days"],
        ]
        for s in stages
    ]
    return table(headers, rows, right={2, 3, 4, 5, 6})
