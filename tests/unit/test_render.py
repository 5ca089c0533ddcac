"""runner.render without a database: what `show` and `list` print stays on the lines it owns,
whatever text the CRM or a failed run puts in a cell."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from runner import render

RUN_ID = UUID("3fb59f79-ed37-40a6-a19d-9a67e969cd1a")
TENANT_ID = UUID("c2ce6f44-7ed4-457b-9e2f-eb89414c343c")
EVIL = "\x1b[2J\x1b[Hpwned\tcol\nrow"
# Every code point a terminal may act on instead of printing: C0, DEL and C1.
CONTROLS = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]


def deal(**overrides: Any) -> dict[str, Any]:
    return {
        "deal_name": "Acme renewal",
        "pipeline_id": UUID(int=1),
        "pipeline_name": "New Business",
        "stage_id": UUID(int=2),
        "stage_name": "Qualification",
        "amount": Decimal("1200.50"),
        "days_in_stage": Decimal("41.20"),
        "days_in_cycle": Decimal("90.00"),
        "threshold_days": 30,
        "at_risk_reason": "STAGE",
        "owned_by_user_id": UUID(int=3),
    } | overrides


def fact(**overrides: Any) -> dict[str, Any]:
    return {
        "pipeline_id": UUID(int=1),
        "pipeline_name": "New Business",
        "stage_id": UUID(int=2),
        "stage_name": "Qualification",
        "at_risk_deal_count": 3,
        "at_risk_amount": Decimal("300.00"),
        "avg_days_in_stage": Decimal("40.00"),
        "median_days_in_stage": Decimal("41.00"),
        "total_deal_count": 4,
        "total_amount": Decimal("400.00"),
        "percent_at_risk": Decimal("0.7500"),
    } | overrides


def run(**overrides: Any) -> dict[str, Any]:
    return {
        "run_id": RUN_ID,
        "tenant_id": TENANT_ID,
        "status": "FAILED",
        "generated_at": datetime(2026, 1, 31, tzinfo=UTC),
        "finished_at": datetime(2026, 1, 31, 0, 1, tzinfo=UTC),
        "input_params": {"threshold_days": 30, "cycle_threshold_days": None},
        "error_message": "report_deal_aging_fact: Database Error",
        "fact_rows": 0,
    } | overrides


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Acme renewal", "Acme renewal"),
        ("Zürich \u2013 Straße 北京 😀", "Zürich \u2013 Straße 北京 😀"),
        ("a\tb", "a\\tb"),
        ("a\nb\r\n", "a\\nb\\r\\n"),
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
        ("\x00\x07\x08\x7f", "\\x00\\x07\\x08\\x7f"),
        ("\x9b31m", "\\x9b31m"),  # CSI as one C1 byte
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
    ],
)
def test_printable_escapes_control_characters(text: str, shown: str) -> None:
    assert render.printable(text) == shown


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_printable_leaves_no_control_character(control: str) -> None:
    shown = render.printable(f"a{control}b")
    assert shown.isprintable() and shown.startswith("a\\") and shown.endswith("b")


def test_a_deal_name_with_escapes_stays_in_its_cell() -> None:
    rows = [deal(deal_name=EVIL), deal(), deal(stage_name="Won\r\nover")]

    lines = render.deals_table(rows).split("\n")

    assert len(lines) == 2 + len(rows)
    assert all(line.isprintable() for line in lines)
    assert "\\x1b[2J\\x1b[Hpwned\\tcol\\nrow" in lines[2]
    # The escaped name is as wide as its column says: the next column starts where the rule does.
    rule = lines[1].split("  ")
    assert lines[2].index("New Business") == len(rule[0]) + 2


def test_snoozed_deals_say_until_when_and_why() -> None:
    snoozed = deal(is_snoozed=True, snoozed_until=datetime(2026, 2, 1, tzinfo=UTC))
    lines = render.deals_table([deal(), snoozed | {"snooze_reason": "Budget\tfreeze"}]).split("\n")

    assert lines[0].split()[-4:] == ["snoozed", "until", "snooze", "reason"]
    assert lines[3].split()[-3:] == ["2026-02-01", "00:00:00+0000", "Budget\\tfreeze"]
    assert lines[2].split()[-1] == str(UUID(int=3))
    assert "snoozed" not in render.deals_table([deal()])


def test_stage_limits_show_the_chosen_percentiles_limit() -> None:
    stage = {
        "pipeline_id": UUID(int=1),
        "stage_id": UUID(int=2),
        "stage_name": "Qualification",
        "completed_visit_count": 7,
        "p50_visit_days": Decimal("3.00"),
        "p75_visit_days": Decimal("4.10"),
        "p90_visit_days": Decimal("9.50"),
        "p75_limit_days": 5,
        "p90_limit_days": 10,
    }
    lines = render.stage_limits_table([stage, stage | {"p90_limit_days": None}], "90").split("\n")

    assert lines[0].split()[-1] == "limit" and lines[2].split()[-1] == "10"
    assert lines[3].split()[-1] == "9.50"
    assert render.stage_limits_table([], "75").startswith("(no stage visit")


def test_facts_table_escapes_pipeline_and_stage_names() -> None:
    lines = render.facts_table([fact(pipeline_name="Pipe\tline", stage_name=EVIL)]).split("\n")

    assert len(lines) == 4  # header, rule, the row and the total
    assert all(line.isprintable() for line in lines)
    assert lines[2].startswith("Pipe\\tline  \\x1b[2J")


def test_runs_table_escapes_error_messages() -> None:
    lines = render.runs_table([run(error_message="relation\n\x1b]0;title\x07 failed")]).split("\n")

    assert len(lines) == 3
    assert all(line.isprintable() for line in lines)
    assert "relation\\n\\x1b]0;title\\x07 failed" in lines[2]


def test_run_header_escapes_error_message_and_parameters() -> None:
    header = render.run_header(
        run(
            status="FAILED\x1b[8m",
            input_params={"threshold_days": 30, "source_schema": "crm\nparameters x=1"},
            error_message='Database Error\n  relation "deal" does not exist\x1b[2J',
        )
    )

    lines = header.split("\n")
    assert len(lines) == 5
    assert all(line.isprintable() for line in lines)
    assert lines[0].endswith("FAILED\\x1b[8m")
    assert lines[3] == "parameters threshold_days=30, source_schema=crm\\nparameters x=1"
    assert lines[4] == 'error      Database Error\\n  relation "deal" does not exist\\x1b[2J'


def test_json_keeps_the_text_as_it_is() -> None:
    document = {"deals": [deal(deal_name=EVIL)], "run": run()}

    text = render.to_json(document)

    assert "\x1b" not in text and "\t" not in text.replace("\n", "")
    assert json.loads(text)["deals"][0]["deal_name"] == EVIL
