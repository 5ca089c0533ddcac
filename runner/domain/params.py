"""The parameters of a report run, validated before anything touches the database."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from runner.domain.errors import BadInput

T = TypeVar("T")
PRINCIPAL_TYPES = ("USER", "GROUP")
BREAKDOWNS = ("owner",)
# The default first, as deal_aging_snoozes and deal_aging_aging_calendar have them.
SNOOZES = ("ignore", "honor")
AGING_CALENDARS = ("calendar", "business")
THRESHOLD_MODES = ("fixed", "p75", "p90")
CHANGES = ("ignore", "track")
# PostgreSQL's largest integer: day counts are stored as integer, and counts are compared with one.
MAX_INTEGER = 2_147_483_647
# Years as written: on every zone offset (up to ±14:00) the instant still converts to UTC within
# what Python's datetime and PostgreSQL hold. macros/report_params.sql has the same rule.
MIN_YEAR, MAX_YEAR = 1000, 9998
# Plain names only: dbt quotes a schema name into its SQL without escaping it.
SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class ReportParams:
    """What a run computes; which tenant it computes it for is the run's own (RunRequest)."""

    threshold_days: int
    cycle_threshold_days: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    pipeline_id: UUID | None = None
    principal_type: str | None = None
    principal_id: UUID | None = None
    stage_id: UUID | None = None
    breakdown: str | None = None
    snoozes: str = SNOOZES[0]
    aging_calendar: str = AGING_CALENDARS[0]
    threshold_mode: str = THRESHOLD_MODES[0]
    changes: str = CHANGES[0]

    def input_params(self) -> dict[str, Any]:
        """The header's input_params: the reference query's names, in the form dbt's hook writes."""
        return {
            "threshold_days": self.threshold_days,
            "cycle_threshold_days": self.cycle_threshold_days,
            "period_start": _iso(self.period_start),
            "period_end": _iso(self.period_end),
            "pipeline_id": _text(self.pipeline_id),
            "principal_type": self.principal_type,
            "principal_id": _text(self.principal_id),
            "stage_id": _text(self.stage_id),
            "breakdown": self.breakdown,
            "snoozes": self.snoozes,
            "aging_calendar": self.aging_calendar,
            "threshold_mode": self.threshold_mode,
            "changes": self.changes,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _text(value: UUID | None) -> str | None:
    return str(value) if value else None


def optional(parse: Callable[[str, str], T], option: str, text: str | None) -> T | None:
    return None if text is None else parse(option, text)


def parse_uuid(option: str, text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise BadInput(f"{option}: expected a UUID, got {text!r}") from None


def parse_day_count(option: str, text: str) -> int:
    return parse_count(option, text, "days")


def parse_count(option: str, text: str, unit: str) -> int:
    """A whole number of `unit`, 0 or more, that PostgreSQL's integer holds."""
    if not text.isascii() or not text.isdigit() or int(text) > MAX_INTEGER:
        raise BadInput(f"{option}: expected a whole number of {unit}, 0 or more, got {text!r}")
    return int(text)


def parse_timestamp(option: str, text: str) -> datetime:
    """ISO 8601; a timestamp without a time zone is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(
            f"{option}: expected an ISO 8601 timestamp such as 2026-01-31T00:00:00Z, got {text!r}"
        ) from None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise BadInput(
            f"{option}: expected a timestamp with a year from {MIN_YEAR} to {MAX_YEAR}, got {text!r}"
        )
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_schema_name(option: str, text: str) -> str:
    """A plain schema name: letters, digits and underscores, not starting with a digit."""
    if not SCHEMA_NAME.fullmatch(text):
        raise BadInput(f"{option}: expected a plain schema name, got {text!r}")
    return text


def parse_principal_type(option: str, text: str) -> str:
    if text.upper() not in PRINCIPAL_TYPES:
        raise BadInput(f"{option}: expected USER or GROUP, got {text!r}")
    return text.upper()


def parse_breakdown(option: str, text: str) -> str:
    if text.lower() not in BREAKDOWNS:
        raise BadInput(f"{option}: expected owner, got {text!r}")
    return text.lower()


def parse_choice(option: str, text: str, choices: tuple[str, ...]) -> str:
    """One of a few words, in any case; returned lower-cased."""
    if text.lower() not in choices:
        raise BadInput(f"{option}: expected {' or '.join(choices)}, got {text!r}")
    return text.lower()


def parse_snoozes(option: str, text: str) -> str:
    return parse_choice(option, text, SNOOZES)


def parse_aging_calendar(option: str, text: str) -> str:
    return parse_choice(option, text, AGING_CALENDARS)


def parse_threshold_mode(option: str, text: str) -> str:
    return parse_choice(option, text, THRESHOLD_MODES)


def parse_changes(option: str, text: str) -> str:
    return parse_choice(option, text, CHANGES)


def build_params(
    *,
    threshold_days: str,
    cycle_threshold_days: str | None = None,
    period_start: str | None = None,
    period_end: str | None = None,
    pipeline_id: str | None = None,
    principal_type: str | None = None,
    principal_id: str | None = None,
    stage_id: str | None = None,
    breakdown: str | None = None,
    snoozes: str | None = None,
    aging_calendar: str | None = None,
    threshold_mode: str | None = None,
    changes: str | None = None,
) -> ReportParams:
    """Validate the command-line values of a run; raises BadInput naming the first bad one."""
    params = ReportParams(
        threshold_days=parse_day_count("--threshold-days", threshold_days),
        cycle_threshold_days=optional(
            parse_day_count, "--cycle-threshold-days", cycle_threshold_days
        ),
        period_start=optional(parse_timestamp, "--period-start", period_start),
        period_end=optional(parse_timestamp, "--period-end", period_end),
        pipeline_id=optional(parse_uuid, "--pipeline-id", pipeline_id),
        principal_type=optional(parse_principal_type, "--principal-type", principal_type),
        principal_id=optional(parse_uuid, "--principal-id", principal_id),
        stage_id=optional(parse_uuid, "--stage-id", stage_id),
        breakdown=optional(parse_breakdown, "--breakdown", breakdown),
        snoozes=optional(parse_snoozes, "--snoozes", snoozes) or SNOOZES[0],
        aging_calendar=optional(parse_aging_calendar, "--aging-calendar", aging_calendar)
        or AGING_CALENDARS[0],
        threshold_mode=optional(parse_threshold_mode, "--threshold-mode", threshold_mode)
        or THRESHOLD_MODES[0],
        changes=optional(parse_changes, "--changes", changes) or CHANGES[0],
    )
    if (params.principal_type is None) != (params.principal_id is None):
        raise BadInput("--principal-type and --principal-id: give both or neither")
    if params.breakdown and params.principal_type:
        raise BadInput(
            "--breakdown owner and --principal-type: the breakdown fills the principal columns"
            " itself; give one or the other"
        )
    if params.threshold_mode != THRESHOLD_MODES[0] and params.aging_calendar != AGING_CALENDARS[0]:
        raise BadInput(
            f"--threshold-mode {params.threshold_mode} and --aging-calendar {params.aging_calendar}:"
            " limits learned from history are in calendar days; give one or the other"
        )
    if params.period_start and params.period_end and params.period_start >= params.period_end:
        raise BadInput(
            f"--period-start ({params.period_start.isoformat()}) must be before"
            f" --period-end ({params.period_end.isoformat()})"
        )
    return params
