"""The run's page, part by part, from rows made here (no database): escaping, number formatting,
the cap on the deal list, the headline's changes and a page that asks nothing of any host."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from runner import html_report
from runner.html_report import HistoryPoint, PageData, Totals

HOSTILE = "<img src=x onerror=alert(1)>"
GENERATED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
TENANT = UUID("6f1c0000-0000-4000-8000-000000000001")


def run(**overrides: Any) -> dict[str, Any]:
    return {
        "run_id": uuid4(),
        "tenant_id": TENANT,
        "status": "SUCCEEDED",
        "generated_at": GENERATED,
        "finished_at": GENERATED + timedelta(seconds=2),
        "period_start": None,
        "period_end": None,
        "input_params": {"threshold_days": 30, "cycle_threshold_days": 180, "breakdown": None},
        "error_message": None,
    } | overrides


def fact(pipeline: str, stage: str, order: int, deals: int, at_risk: int, **extra: Any) -> dict:
    return {
        "pipeline_id": UUID(int=hash(pipeline) % 2**64),
        "pipeline_name": pipeline,
        "stage_id": UUID(int=hash((pipeline, stage)) % 2**64),
        "stage_name": stage,
        "display_order": order,
        "principal_type": None,
        "principal_id": None,
        "threshold_days": 30,
        "cycle_threshold_days": 180,
        "at_risk_deal_count": at_risk,
        "at_risk_amount": Decimal(at_risk * 1000),
        "avg_days_in_stage": Decimal("40.5"),
        "median_days_in_stage": Decimal("33.25"),
        "total_deal_count": deals,
        "total_amount": Decimal(deals * 1000),
        "percent_at_risk": Decimal(at_risk) / deals,
    } | extra


def listed(name: str) -> dict[str, Any]:
    """A deal where a run lists it: its name, pipeline and stage."""
    return {
        "deal_id": uuid4(),
        "deal_name": name,
        "pipeline_id": uuid4(),
        "pipeline_name": "New Business",
        "stage_id": uuid4(),
        "stage_name": "Qualification",
    }


def deal(name: str, past: int) -> dict[str, Any]:
    return listed(name) | {
        "owned_by_user_id": UUID("00000000-0000-4000-8000-0000000000aa"),
        "amount": Decimal("12345.5"),
        "days_in_stage": Decimal(30 + past),
        "days_in_cycle": Decimal(60 + past),
        "threshold_days": 30,
        "cycle_threshold_days": 180,
        "days_past_limit": Decimal(past),
        "at_risk_reason": "STAGE",
    }


FACTS = [
    fact("New Business", "Qualification", 1, 10, 4),
    fact("New Business", "Proposal", 2, 5, 1),
    fact("Renewals", "Upcoming", 1, 8, 8),
]


def page(**overrides: Any) -> str:
    data = {"run": run(), "facts": FACTS, "deals": [deal("Acme", 9)], "deal_count": 1} | overrides
    return html_report.render_page(PageData(**data))


def test_crm_names_show_as_text_in_tables_and_charts():
    facts = [
        fact(HOSTILE, HOSTILE + " stage", 1, 3, 2),
        fact("P $x$ & Co", "$\\frac{a}{b}$", 2, 1, 1),
    ]

    html = page(facts=facts, deals=[deal(HOSTILE, 5)])

    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    # In the deal table, the stage table and the chart's labels alike.
    hostile_chart = re.findall(r"<svg.*?</svg>", html, re.S)[0]
    assert ">&lt;img src=x onerror=alert(1)&gt; stage" in hostile_chart
    # Math text is off: the dollar signs are the name's own.
    assert "$\\frac{a}{b}$" in html
    assert "P $x$ &amp; Co" in html


def test_the_page_asks_nothing_of_any_host():
    html = page(
        history=[HistoryPoint(uuid4(), GENERATED - timedelta(days=1), Totals.of_facts(FACTS))]
    )

    lowered = html.lower()
    for forbidden in ("<script", "src=", "@import", "<link", "<iframe", "<object", "<image"):
        assert forbidden not in lowered, forbidden
    # The charts' references are to their own parts, on the page.
    assert set(re.findall(r"url\((.)", html)) <= {"#"}
    assert set(re.findall(r'href="(.)', html)) <= {"#"}
    # The only URLs are the SVG's namespace names, which nothing fetches.
    urls = set(re.findall(r"https?://[^\"' )]+", html))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    assert "default-src 'none'" in html


@pytest.mark.parametrize(
    ("formatter", "value", "text"),
    [
        (html_report.count, 1234567, "1,234,567"),
        (html_report.count, None, ""),
        (html_report.amount, Decimal("1234567.5"), "1,234,567.50"),
        (html_report.amount, Decimal("0"), "0.00"),
        (html_report.days, Decimal("33.25"), "33.2"),
        (html_report.days, Decimal("33.26"), "33.3"),
        (html_report.percent, Decimal("0.935"), "93.5%"),
        (html_report.percent, None, ""),
    ],
)
def test_numbers_are_formatted_for_people(formatter, value, text):
    assert formatter(value) == text


def test_changes_carry_their_sign():
    assert html_report.signed(12, html_report.count) == "+12"
    assert html_report.signed(-3, html_report.count) == "\u22123"
    assert html_report.signed(0, html_report.count) == "±0"
    assert html_report.signed(Decimal("-1500.5"), html_report.amount) == "\u22121,500.50"


def test_the_deal_list_is_capped_and_says_how_many_more():
    deals = [deal(f"deal {i}", 1000 - i) for i in range(html_report.DEAL_ROWS + 5)]

    html = page(deals=deals, deal_count=len(deals) + 40)

    assert html.count('<td class="deal">') == html_report.DEAL_ROWS
    assert "The first 200 of 245 at-risk deals (45 more not shown)" in html
    assert "deal 0<" in html and "deal 199<" in html and "deal 200<" not in html


def test_a_short_deal_list_is_listed_whole():
    html = page(deals=[deal("Acme", 9), deal("Initech", 3)], deal_count=2)

    assert "All 2 at-risk deals" in html
    assert html.index("Acme") < html.index("Initech")


def test_snoozed_deals_are_a_table_of_their_own_with_until_when_and_why():
    snoozed = deal(HOSTILE, 20) | {
        "snoozed_until": datetime(2026, 2, 15, tzinfo=UTC),
        "snooze_reason": "Waiting for <b>budget</b>",
    }

    html = page(snoozed=[snoozed])

    section = html[html.index('id="snoozed"') :]
    assert "1 snoozed deal," in section
    assert "2026-02-15 00:00:00 UTC" in section
    assert "Waiting for &lt;b&gt;budget&lt;/b&gt;" in section and "<b>" not in html
    assert 'id="snoozed"' not in page()


def change(name: str, change_type: str, reason: str | None = None) -> dict[str, Any]:
    return listed(name) | {
        "amount": Decimal("100"),
        "previous_run_id": UUID("00000000-0000-4000-8000-000000009103"),
        "change_type": change_type,
        "first_flagged_at": None if reason else datetime(2026, 11, 2, tzinfo=UTC),
        "recovery_reason": reason,
    }


def test_changes_since_the_previous_run_are_counted_and_listed():
    changes = [
        change(HOSTILE, "NEWLY_AT_RISK"),
        change("Initech", "STILL_AT_RISK"),
        change("Globex", "RECOVERED", "WON"),
        change("Umbrella", "RECOVERED", "MOVED_STAGE"),
    ]

    html = page(changes=changes)

    section = html[html.index('id="changes"') : html.index('id="deals"')]
    assert "Since run 00000000-0000-4000-8000-000000009103:" in section
    assert (
        "1 newly at risk, 1 still at risk, 2 recovered (1 won, 1 moved to another stage)" in section
    )
    assert "2026-11-02 00:00:00 UTC" in section and HOSTILE not in html
    assert 'id="changes"' not in page()


def test_headline_figures_and_their_change_since_the_previous_run():
    previous = Totals(
        open_deals=20, at_risk_deals=15, at_risk_amount=Decimal(15000), total_amount=Decimal(20000)
    )
    history = [HistoryPoint(uuid4(), GENERATED - timedelta(days=1), previous)]

    headlines = html_report.headlines(Totals.of_facts(FACTS), previous)
    html = page(history=history)

    assert [(h.label, h.value, h.change) for h in headlines] == [
        ("open deals", "23", "+3"),
        ("at-risk deals", "13", "\u22122"),
        ("at-risk amount", "13,000.00", "\u22122,000.00"),
        ("percent at risk", "56.5%", "\u221218.5 pts"),
    ]
    assert [h.worse for h in headlines] == [None, False, False, False]
    assert "since 2026-11-30 09:30:00 UTC" in html
    # Two runs: a trend chart and its table.
    assert 'id="trend"' in html and "At risk over the last 2 runs" in html


def test_a_first_run_says_it_has_nothing_to_compare_with():
    html = page()

    assert html.count("no earlier run with these parameters") == 4
    assert 'id="trend"' not in html


def test_stages_keep_their_display_order_and_sum_over_owners():
    owner_a, owner_b = uuid4(), uuid4()
    facts = [
        fact("Renewals", "Upcoming", 1, 4, 1, principal_type="USER", principal_id=owner_a),
        fact("Renewals", "Upcoming", 1, 6, 5, principal_type="USER", principal_id=owner_b),
        fact("Renewals", "In Review", 2, 3, 0, principal_type="USER", principal_id=None),
    ]

    [pipeline] = html_report.pipelines(facts)
    owners = html_report.owners(facts)

    assert [(s.name, s.open_deals, s.at_risk_deals) for s in pipeline.stages] == [
        ("Upcoming", 10, 6),
        ("In Review", 3, 0),
    ]
    # A median does not add up over owners; a stage of one row keeps its own.
    assert [s.median_days for s in pipeline.stages] == [None, Decimal("33.25")]
    assert [(o.owner, o.totals.at_risk_deals) for o in owners] == [
        (str(owner_b), 5),
        (str(owner_a), 1),
        ("(no owner)", 0),
    ]


def test_the_owner_breakdown_is_a_table_only_when_the_run_has_one():
    params = {"threshold_days": 30, "cycle_threshold_days": None, "breakdown": "owner"}
    owner = uuid4()
    facts = [fact("Renewals", "Upcoming", 1, 4, 1, principal_type="USER", principal_id=owner)]

    assert 'id="owners"' not in page()
    html = page(run=run(input_params=params), facts=facts)
    assert 'id="owners"' in html and str(owner) in html
    assert "broken down by owner" in html


def test_parameters_in_words():
    words = html_report.parameters_in_words(
        run(
            period_end=datetime(2026, 2, 28, tzinfo=UTC),
            input_params={
                "threshold_days": 14,
                "cycle_threshold_days": 90,
                "pipeline_id": "p-1",
                "principal_type": "GROUP",
                "principal_id": "g-1",
                "snoozes": "honor",
                "aging_calendar": "business",
            },
        ),
        {"p-1": "New Business"},
    )

    assert words == [
        "at risk when in its stage for more than 14 days (or the stage's own limit, where one is set)",
        "or open for more than 90 days in all",
        "deals that entered their stage before 2026-02-28 00:00:00 UTC",
        "pipeline New Business only",
        "deals of group g-1 only",
        "days are the tenant's working days, in its time zone",
        "a deal snoozed past the as-of instant is not at risk (listed apart)",
    ]


def test_a_failed_run_shows_its_error_and_no_figures():
    html = page(run=run(status="FAILED", error_message=HOSTILE), facts=[], deals=[], deal_count=0)

    assert "error: &lt;img src=x onerror=alert(1)&gt;" in html
    assert "<svg" not in html and 'id="headline"' not in html


def test_the_same_rows_give_the_same_page():
    data = PageData(run(), FACTS, [deal("Acme", 9)], 1)
    written = datetime(2026, 12, 1, tzinfo=UTC)

    assert html_report.render_page(data, written) == html_report.render_page(data, written)
