"""`python -m runner show RUN_ID --html FILE`: the run's page holds the run's own numbers (its fact
rows and deal list), nothing of another tenant, CRM names as text, and opens in a real browser
(Debian's chromium, driven by Playwright) without asking any host for anything."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from runner.html_report import DEAL_ROWS

from .report_checks import DatasetIds
from .runner_process import run_runner
from .support import DEAL_TABLE, FACT_TABLE, connect

HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
OTHER_DEAL = "Other Tenant Deal 7f3a"
OTHER_PIPELINE = "Other Tenant Pipeline 7f3a"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass(frozen=True)
class Page:
    run_id: str
    previous_run_id: str
    tenant: str
    other_tenant: str
    path: Path
    html: str


class Tables(HTMLParser):
    """Every <table> of a page: its caption and its rows' cell texts; and the headline tiles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.tiles: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self._tile_part: str | None = None
        self._tile_label = ""

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table":
            self.tables.append(("", []))
        elif tag == "caption":
            self._caption = []
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "div" and {"label", "value"} & set(classes):
            self._tile_part = classes[0]

    def handle_endtag(self, tag):
        if tag == "caption" and self._caption is not None:
            self.tables[-1] = ("".join(self._caption).strip(), self.tables[-1][1])
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "div":
            self._tile_part = None

    def handle_data(self, data):
        if self._caption is not None:
            self._caption.append(data)
        elif self._cell is not None:
            self._cell.append(data)
        elif self._tile_part == "label":
            self._tile_label = data.strip()
        elif self._tile_part == "value":
            self.tiles[self._tile_label] = data.strip()

    def table(self, caption_start: str) -> list[list[str]]:
        [rows] = [rows for caption, rows in self.tables if caption.startswith(caption_start)]
        return rows[1:]  # without the header row

    def deals(self) -> list[list[str]]:
        [rows] = [
            rows for caption, rows in self.tables if caption.startswith(("The first", "All "))
        ]
        return rows[1:]

    def caption(self, start: str) -> str:
        [caption] = [caption for caption, _ in self.tables if caption.startswith(start)]
        return caption


def parse(html: str) -> Tables:
    tables = Tables()
    tables.feed(html)
    return tables


@pytest.fixture(scope="module")
def page(
    database_env: dict[str, str], ids: DatasetIds, report_ready: None, tmp_path_factory
) -> Iterator[Page]:
    """Two runs of the same parameters for the biggest tenant, the worst at-risk deal renamed to
    an HTML tag, and another tenant's deal and pipeline renamed to names to look for; the second
    run's page. The CRM gets its names back afterwards."""
    tenant, other = ids.tenants[0], ids.tenants[1]
    with connect(database_env["PGDATABASE"], autocommit=True) as conn:
        deal_id, deal_name = conn.execute(
            f"select d.id, d.name from {DEAL_TABLE} r"
            " join dyno_crm.deal d on d.id = r.deal_id and d.tenant_id = r.tenant_id"
            " where r.tenant_id = %s order by r.days_in_stage desc, d.id limit 1",
            (tenant,),
        ).fetchone()
        other_deal_id, other_deal_name = conn.execute(
            "select id, name from dyno_crm.deal where tenant_id = %s order by id limit 1", (other,)
        ).fetchone()
        other_pipeline_id, other_pipeline_name = conn.execute(
            "select id, name from dyno_crm.pipeline where tenant_id = %s order by id limit 1",
            (other,),
        ).fetchone()
        renames = [
            ("deal", deal_id, HOSTILE, deal_name),
            ("deal", other_deal_id, OTHER_DEAL, other_deal_name),
            ("pipeline", other_pipeline_id, OTHER_PIPELINE, other_pipeline_name),
        ]
        for table, row_id, new, _ in renames:
            conn.execute(f"update dyno_crm.{table} set name = %s where id = %s", (new, row_id))
        try:
            run_ids = []
            for _ in range(2):
                done = run_runner(
                    database_env,
                    "run",
                    "--all-tenants",
                    "--threshold-days",
                    "30",
                    "--cycle-threshold-days",
                    "180",
                )
                assert done.returncode == 0, done.stderr
                [run_id] = [
                    r
                    for r in done.stdout.split()
                    if conn.execute(
                        "select tenant_id::text from dyno_crm.report_run where run_id = %s", (r,)
                    ).fetchone()[0]
                    == tenant
                ]
                run_ids.append(run_id)
            path = tmp_path_factory.mktemp("page") / "page.html"
            shown = run_runner(database_env, "show", run_ids[1], "--html", str(path))
            assert shown.returncode == 0, shown.stderr
            assert shown.stdout == f"{path}\n"
            yield Page(run_ids[1], run_ids[0], tenant, other, path, path.read_text())
        finally:
            for table, row_id, _, old in renames:
                conn.execute(f"update dyno_crm.{table} set name = %s where id = %s", (old, row_id))


def fmt_count(value) -> str:
    return f"{value:,}"


def fmt_amount(value) -> str:
    return f"{Decimal(value):,.2f}"


def test_stage_tables_equal_the_runs_fact_rows(page, db):
    facts = db.execute(
        "select p.name, s.name, f.threshold_days, f.median_days_in_stage, f.total_deal_count,"
        " f.at_risk_deal_count, f.at_risk_amount, f.total_amount"
        f" from {FACT_TABLE} f join dyno_crm.pipeline p on p.id = f.pipeline_id"
        " join dyno_crm.pipeline_stage s on s.id = f.stage_id"
        " where f.run_id = %s order by p.name, p.id, s.display_order",
        (page.run_id,),
    ).fetchall()
    tables = parse(page.html)

    shown = {pipeline: tables.table(f"{pipeline}: per stage") for pipeline in {f[0] for f in facts}}
    expected: dict[str, list[list[str]]] = {}
    for pipeline, stage, limit, median, deals, at_risk, risk_amount, amount in facts:
        expected.setdefault(pipeline, []).append(
            [
                stage,
                str(limit),
                f"{median:,.1f}",
                fmt_count(deals),
                fmt_count(at_risk),
                fmt_count(deals - at_risk),
                f"{Decimal(at_risk) / deals * 100:.1f}%",
                fmt_amount(risk_amount),
                fmt_amount(amount - risk_amount),
            ]
        )
    assert shown == expected
    # One chart per pipeline, drawn inline.
    assert page.html.count("<svg ") == len(expected) + 1  # and the trend chart


def test_headline_figures_equal_the_runs_totals_and_their_change(page, db):
    deals, at_risk, amount = db.execute(
        "select sum(total_deal_count), sum(at_risk_deal_count), sum(at_risk_amount)"
        f" from {FACT_TABLE} where run_id = %s",
        (page.run_id,),
    ).fetchone()
    previous_generated = db.execute(
        "select to_char(generated_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
        " from dyno_crm.report_run where run_id = %s",
        (page.previous_run_id,),
    ).fetchone()[0]

    assert parse(page.html).tiles == {
        "open deals": fmt_count(deals),
        "at-risk deals": fmt_count(at_risk),
        "at-risk amount": fmt_amount(amount),
        "percent at risk": f"{Decimal(at_risk) / deals * 100:.1f}%",
    }
    # The previous run of the same parameters saw the same CRM.
    assert page.html.count(f"±0 since {previous_generated} UTC") == 4
    trend = parse(page.html).table("At risk over the last")
    assert [row[1] for row in trend[-2:]] == [page.previous_run_id, page.run_id]


def test_the_deal_list_is_the_runs_worst_first_and_capped(page, db):
    listed = db.execute(
        "select deal_name, amount, days_in_stage from"
        f" {DEAL_TABLE} where run_id = %s order by greatest(days_in_stage - threshold_days,"
        " days_in_cycle - cycle_threshold_days) desc, amount desc nulls last, deal_id",
        (page.run_id,),
    ).fetchall()
    tables = parse(page.html)

    assert [(r[0], r[4], r[5]) for r in tables.deals()] == [
        (name, fmt_amount(amount) if amount is not None else "", f"{days:,.1f}")
        for name, amount, days in listed[:DEAL_ROWS]
    ]
    if len(listed) > DEAL_ROWS:
        assert tables.caption("The first") == (
            f"The first {DEAL_ROWS} of {len(listed):,} at-risk deals"
            f" ({len(listed) - DEAL_ROWS:,} more not shown)"
        )


def test_a_hostile_deal_name_shows_as_text(page):
    assert ESCAPED in page.html
    assert "<img" not in page.html
    assert HOSTILE in [row[0] for row in parse(page.html).deals()]


def test_another_tenants_data_never_appears(page, db):
    other_ids = [
        str(row[0])
        for row in db.execute(
            "select id from dyno_crm.pipeline where tenant_id = %(t)s"
            " union all select id from dyno_crm.pipeline_stage where tenant_id = %(t)s",
            {"t": page.other_tenant},
        )
    ]

    assert page.tenant in page.html
    for absent in [OTHER_DEAL, OTHER_PIPELINE, page.other_tenant, *other_ids]:
        assert absent not in page.html


def test_an_unknown_run_writes_no_page(database_env, report_ready, tmp_path):
    path = tmp_path / "page.html"
    done = run_runner(
        database_env, "show", "3fb59f79-ed37-40a6-a19d-9a67e969cd1a", "--html", str(path)
    )

    assert done.returncode == 2
    assert "no report run" in done.stderr
    assert not path.exists()


def test_the_page_opens_in_a_real_browser_asking_no_host(page, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    requests: list[str] = []
    errors: list[str] = []
    screenshot = tmp_path / "page.png"

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(
                viewport={"width": 1200, "height": 900}, java_script_enabled=False
            )
            tab = context.new_page()
            tab.on("request", lambda request: requests.append(request.url))
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda error: errors.append(str(error)))
            # Nothing but the page itself may load; anything else is refused and recorded.
            tab.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url == page.path.as_uri() else route.abort()
                ),
            )
            tab.goto(page.path.as_uri(), wait_until="load")
            charts = tab.locator("svg[role=img]").count()
            hostile_text = tab.get_by_text(HOSTILE, exact=True).count()
            tab.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert requests == [page.path.as_uri()]
    assert errors == []
    assert charts >= 2
    # The hostile name is text on the page, not an element.
    assert hostile_text == 1
    assert screenshot.stat().st_size > 10_000


def test_run_html_dir_writes_a_page_per_succeeded_run(database_env, db, report_ready, tmp_path):
    done = run_runner(
        database_env, "run", "--all-tenants", "--threshold-days", "30", "--html-dir", str(tmp_path)
    )

    assert done.returncode == 0, done.stderr
    run_ids = done.stdout.split()
    tenants = dict(
        db.execute(
            "select run_id::text, tenant_id::text from dyno_crm.report_run"
            " where run_id = any(%s::uuid[])",
            (run_ids,),
        ).fetchall()
    )
    expected = sorted(tmp_path / f"{tenants[run_id]}-{run_id}.html" for run_id in run_ids)
    assert sorted(tmp_path.iterdir()) == expected
    # stdout keeps the run ids alone; the pages' paths go to stderr.
    assert done.stderr.splitlines() == [f"page {path}" for path in expected]
    for path in expected:
        html = path.read_text()
        assert html.startswith("<!DOCTYPE html>") and path.stem.split("-", 5)[-1] in html
        others = set(tenants.values()) - {html_tenant(path, tenants)}
        assert not any(other in html for other in others)


def html_tenant(path: Path, tenants: dict[str, str]) -> str:
    [tenant] = [t for run_id, t in tenants.items() if path.name == f"{t}-{run_id}.html"]
    return tenant


def test_submit_html_dir_needs_wait(database_env, db, ids, report_ready, tmp_path):
    before = db.execute("select count(*) from dyno_crm.report_run").fetchone()[0]
    done = run_runner(
        database_env,
        "submit",
        "--tenant-id",
        ids.tenants[0],
        "--threshold-days",
        "30",
        "--html-dir",
        str(tmp_path),
    )

    assert done.returncode == 2
    assert "--html-dir" in done.stderr and "--wait" in done.stderr
    assert db.execute("select count(*) from dyno_crm.report_run").fetchone()[0] == before
