"""One self-contained HTML page per report run, for a sales manager to open, mail or print.

The page is a single file: styles inline, charts drawn here as inline SVG by matplotlib (no
JavaScript, no request to any host when opened). Jinja2 autoescapes every value, so a CRM string
(deal, pipeline, stage names) shows as text whatever it holds; the SVG backend escapes the text it
writes, and math-text parsing is off, so a `$` in a name stays a `$`. The page holds the run's own
rows only: every query is by run_id, and the history by the run's tenant.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import jinja2
import psycopg
from markupsafe import Markup, escape

from runner.store import reports
from runner.store.tables import Tables

# The at-risk deals listed on the page, furthest past their limit first; the page says how many
# more the run has.
DEAL_ROWS = 200
# The owners listed in the owner breakdown, most at-risk deals first.
OWNER_ROWS = 200
# The runs of the trend chart: this one and up to 11 earlier comparable ones.
TREND_RUNS = 12

AT_RISK_COLOR = "#c62828"
ON_TRACK_COLOR = "#2e7d32"
AMOUNT_COLOR = "#1565c0"
REASONS = {"STAGE": "stage", "CYCLE": "cycle", "BOTH": "both"}


@dataclass(frozen=True)
class Totals:
    open_deals: int
    at_risk_deals: int
    at_risk_amount: Decimal
    total_amount: Decimal

    @property
    def percent_at_risk(self) -> Decimal | None:
        return Decimal(self.at_risk_deals) / self.open_deals if self.open_deals else None

    @classmethod
    def of_facts(cls, facts: Iterable[dict[str, Any]]) -> Totals:
        facts = list(facts)
        return cls(
            open_deals=sum(int(f["total_deal_count"]) for f in facts),
            at_risk_deals=sum(int(f["at_risk_deal_count"]) for f in facts),
            at_risk_amount=sum((Decimal(f["at_risk_amount"]) for f in facts), Decimal(0)),
            total_amount=sum((Decimal(f["total_amount"]) for f in facts), Decimal(0)),
        )

    @classmethod
    def of_history_row(cls, row: dict[str, Any]) -> Totals:
        return cls(
            open_deals=int(row["open_deals"]),
            at_risk_deals=int(row["at_risk_deals"]),
            at_risk_amount=Decimal(row["at_risk_amount"]),
            total_amount=Decimal(row["total_amount"]),
        )


@dataclass(frozen=True)
class HistoryPoint:
    run_id: UUID
    generated_at: datetime
    totals: Totals


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline on the page: its fact rows summed over principals."""

    name: str
    limit_days: str
    median_days: Decimal | None
    open_deals: int
    at_risk_deals: int
    total_amount: Decimal
    at_risk_amount: Decimal

    @property
    def on_track_deals(self) -> int:
        return self.open_deals - self.at_risk_deals

    @property
    def on_track_amount(self) -> Decimal:
        return self.total_amount - self.at_risk_amount

    @property
    def percent_at_risk(self) -> Decimal | None:
        return Decimal(self.at_risk_deals) / self.open_deals if self.open_deals else None


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: list[Stage]


@dataclass(frozen=True)
class PageData:
    """Everything one page shows, read from the database (load_page) or made by a test."""

    run: dict[str, Any]
    facts: list[dict[str, Any]]
    deals: list[dict[str, Any]]
    deal_count: int
    history: list[HistoryPoint] = field(default_factory=list)  # earlier runs, latest first
    tenant_name: str | None = None
    snoozed: list[dict[str, Any]] = field(default_factory=list)  # listed apart, not at risk
    changes: list[dict[str, Any]] = field(default_factory=list)  # since the previous run


def load_page(
    conn: psycopg.Connection,
    tables: Tables,
    source_schema: str,
    run: dict[str, Any],
    tenant_name: str | None = None,
) -> PageData:
    run_id = run["run_id"]
    facts = reports.run_facts(conn, tables, source_schema, run_id)
    deals, deal_count = reports.run_deals_worst(conn, tables, source_schema, run_id, DEAL_ROWS)
    history = [
        HistoryPoint(row["run_id"], row["generated_at"], Totals.of_history_row(row))
        for row in reports.earlier_comparable_runs(conn, tables, run, TREND_RUNS - 1)
    ]
    snoozed = reports.run_deals(conn, tables, source_schema, run_id, DEAL_ROWS, snoozed=True)
    changes = reports.run_changes(conn, tables, source_schema, run_id)
    return PageData(run, facts, deals, deal_count, history, tenant_name, snoozed, changes)


# --- formatting -------------------------------------------------------------------------------


def count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def amount(value: Decimal | float | None) -> str:
    return "" if value is None else f"{Decimal(value):,.2f}"


def days(value: Decimal | float | int | None) -> str:
    return "" if value is None else f"{Decimal(value):,.1f}"


def percent(fraction: Decimal | None) -> str:
    return "" if fraction is None else f"{fraction * 100:.1f}%"


def instant(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def signed(value: Decimal | int, formatter: Any) -> str:
    """A change: +12, ±0, or a decrease with a real minus sign (U+2212)."""
    if value == 0:
        return "±0"
    return f"+{formatter(value)}" if value > 0 else f"\u2212{formatter(-value)}"


def parameters_in_words(run: dict[str, Any], pipeline_names: dict[str, str]) -> list[str]:
    params = run["input_params"] or {}
    words = [
        f"at risk when in its stage for more than {params.get('threshold_days')} days"
        " (or the stage's own limit, where one is set)"
    ]
    if params.get("cycle_threshold_days") is not None:
        words.append(f"or open for more than {params['cycle_threshold_days']} days in all")
    if run.get("period_start"):
        words.append(f"deals that entered their stage at or after {instant(run['period_start'])}")
    if run.get("period_end"):
        words.append(f"deals that entered their stage before {instant(run['period_end'])}")
    if params.get("pipeline_id"):
        pipeline = str(params["pipeline_id"])
        words.append(f"pipeline {pipeline_names.get(pipeline, pipeline)} only")
    if params.get("stage_id"):
        words.append(f"stage {params['stage_id']} only")
    if params.get("principal_type"):
        kind = "user" if params["principal_type"] == "USER" else "group"
        words.append(f"deals of {kind} {params.get('principal_id')} only")
    if params.get("breakdown") == "owner":
        words.append("broken down by owner")
    if params.get("threshold_mode") in ("p75", "p90"):
        words.append(
            f"each stage's limit is the {params['threshold_mode'][1:]}th percentile of its visits"
            " that ended in the 365 days before, rounded up, where it has 5 or more"
        )
    if params.get("aging_calendar") == "business":
        words.append("days are the tenant's working days, in its time zone")
    if params.get("snoozes") == "honor":
        words.append("a deal snoozed past the as-of instant is not at risk (listed apart)")
    if params.get("changes") == "track":
        words.append("what changed since the previous run with these parameters is listed")
    return words


# --- the page's parts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    label: str
    value: str
    change: str | None
    worse: bool | None  # the change makes things worse (more at risk): shown red


def headlines(now: Totals, previous: Totals | None) -> list[Headline]:
    def change(current: Any, before: Any, formatter: Any) -> tuple[str | None, bool | None]:
        if previous is None or current is None or before is None:
            return None, None
        return signed(current - before, formatter), current > before

    pct_now, pct_before = now.percent_at_risk, previous.percent_at_risk if previous else None
    rows = [
        (
            "open deals",
            count(now.open_deals),
            now.open_deals,
            previous and previous.open_deals,
            count,
        ),
        (
            "at-risk deals",
            count(now.at_risk_deals),
            now.at_risk_deals,
            previous and previous.at_risk_deals,
            count,
        ),
        (
            "at-risk amount",
            amount(now.at_risk_amount),
            now.at_risk_amount,
            previous and previous.at_risk_amount,
            amount,
        ),
        (
            "percent at risk",
            percent(pct_now),
            pct_now,
            pct_before,
            lambda v: f"{v * 100:.1f} pts",
        ),
    ]
    result = []
    for label, value, current, before, formatter in rows:
        text, worse = change(current, before, formatter)
        # More open deals is not worse; more at risk is.
        result.append(Headline(label, value, text, None if label == "open deals" else worse))
    return result


def pipelines(facts: Sequence[dict[str, Any]]) -> list[Pipeline]:
    """Pipelines and their stages in the facts' order (by pipeline name, then display order),
    a stage's rows (one per owner with the breakdown) summed."""
    grouped: dict[Any, tuple[str, dict[Any, list[dict[str, Any]]]]] = {}
    for fact in facts:
        name = fact["pipeline_name"] or str(fact["pipeline_id"])
        stages = grouped.setdefault(fact["pipeline_id"], (name, {}))[1]
        stages.setdefault(fact["stage_id"], []).append(fact)
    result = []
    for name, stages in grouped.values():
        result.append(Pipeline(name, [_stage(rows) for rows in stages.values()]))
    return result


def _stage(rows: list[dict[str, Any]]) -> Stage:
    first = rows[0]
    limits = sorted({int(r["threshold_days"]) for r in rows})
    totals = Totals.of_facts(rows)
    return Stage(
        name=first["stage_name"] or str(first["stage_id"]),
        limit_days="/".join(str(limit) for limit in limits),
        # A median does not add up: with the owner breakdown each owner's is in the owner table.
        median_days=first["median_days_in_stage"] if len(rows) == 1 else None,
        open_deals=totals.open_deals,
        at_risk_deals=totals.at_risk_deals,
        total_amount=totals.total_amount,
        at_risk_amount=totals.at_risk_amount,
    )


@dataclass(frozen=True)
class Owner:
    owner: str
    totals: Totals


def owners(facts: Sequence[dict[str, Any]]) -> list[Owner]:
    """The owner breakdown's rows summed per owner, most at-risk deals first."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for fact in facts:
        owner = str(fact["principal_id"]) if fact["principal_id"] else "(no owner)"
        grouped.setdefault(owner, []).append(fact)
    result = [Owner(owner, Totals.of_facts(rows)) for owner, rows in grouped.items()]
    return sorted(
        result, key=lambda o: (-o.totals.at_risk_deals, -o.totals.at_risk_amount, o.owner)
    )


def _deal_cells(d: dict[str, Any]) -> list[str]:
    """The cells every deal table starts with: the deal, where it stands, its owner and amount."""
    return [
        d["deal_name"],
        d["pipeline_name"] or str(d["pipeline_id"]),
        d["stage_name"] or str(d["stage_id"]),
        str(d["owned_by_user_id"]) if d["owned_by_user_id"] else "",
        amount(d["amount"]),
        days(d["days_in_stage"]),
    ]


def deal_rows(deals: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            *_deal_cells(d),
            days(d.get("cumulative_days_in_stage")),
            _limit_words(d),
            days(d["days_past_limit"]),
            REASONS.get(d["at_risk_reason"], str(d["at_risk_reason"])),
        ]
        for d in deals
    ]


def snoozed_rows(deals: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            *_deal_cells(d),
            _limit_words(d),
            instant(d["snoozed_until"]),
            d["snooze_reason"] or "",
        ]
        for d in deals
    ]


CHANGE_WORDS = {
    "NEWLY_AT_RISK": "newly at risk",
    "STILL_AT_RISK": "still at risk",
    "RECOVERED": "recovered",
}
RECOVERY_WORDS = {
    "WON": "won",
    "LOST": "lost",
    "MOVED_STAGE": "moved to another stage",
    "BACK_UNDER_LIMIT": "back under its limit",
    "OUT_OF_SCOPE": "out of the run's scope",
    "SNOOZED": "snoozed",
}


def change_counts(changes: Sequence[dict[str, Any]]) -> list[str]:
    """How many deals of each change, and of each recovery reason, in words."""
    by_type = {kind: 0 for kind in CHANGE_WORDS}
    by_reason = {reason: 0 for reason in RECOVERY_WORDS}
    for c in changes:
        by_type[c["change_type"]] += 1
        if c["recovery_reason"]:
            by_reason[c["recovery_reason"]] += 1
    reasons = [f"{count(n)} {RECOVERY_WORDS[reason]}" for reason, n in by_reason.items() if n]
    words = [f"{count(n)} {CHANGE_WORDS[kind]}" for kind, n in by_type.items()]
    if reasons:
        words[-1] += f" ({', '.join(reasons)})"
    return words


def change_rows(changes: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            CHANGE_WORDS[c["change_type"]],
            c["deal_name"],
            c["pipeline_name"] or str(c["pipeline_id"]),
            c["stage_name"] or str(c["stage_id"]),
            amount(c["amount"]),
            instant(c["first_flagged_at"]),
            RECOVERY_WORDS.get(c["recovery_reason"], "") if c["recovery_reason"] else "",
        ]
        for c in changes
    ]


def _limit_words(deal: dict[str, Any]) -> str:
    limit = f"{deal['threshold_days']} d"
    if deal.get("cycle_threshold_days") is not None:
        limit += f" / {deal['cycle_threshold_days']} d open"
    return limit


# --- charts -------------------------------------------------------------------------------------

_SVG_PROLOGUE = re.compile(r"\A.*?(?=<svg)", re.S)
_SVG_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_SVG_IDS = re.compile(r'(\bid="|url\(#|href="#)')
_RC = {
    "svg.fonttype": "none",  # text stays text: small files, and a screen reader can read it
    "svg.hashsalt": "deal-aging",  # the same run gives the same page
    "text.parse_math": False,  # a `$` in a CRM name is a dollar sign, not math
    "font.family": "sans-serif",
    # Each text element names its fonts: a short list keeps the page small.
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _locator(**kwargs: Any) -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(**kwargs)


def _svg(figure: Any, title: str, name: str) -> Markup:
    """The figure as an inline <svg> element (no XML prologue), with an accessible title; `name`
    is unique on the page."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    _pyplot().close(figure)
    svg = _SVG_PROLOGUE.sub("", buffer.getvalue(), count=1)
    # The RDF metadata (creator, format) says nothing a reader needs.
    svg = _SVG_METADATA.sub("", svg, count=1)
    # Every chart names its parts figure_1, axes_1, ...: prefixed, the ids stay unique on the page
    # and each chart's references (clip paths, markers) find its own.
    svg = _SVG_IDS.sub(lambda m: f"{m.group(1)}{name}-", svg)
    label = escape(title)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)
    return Markup(svg)


def pipeline_chart(pipeline: Pipeline, name: str = "pipeline") -> Markup:
    plt = _pyplot()
    with plt.rc_context(_RC):
        stages = pipeline.stages
        height = 0.9 + 0.42 * len(stages)
        figure, (by_count, by_amount) = plt.subplots(
            1, 2, figsize=(10, height), sharey=True, gridspec_kw={"wspace": 0.08}
        )
        labels = [
            f"{s.name}\nlimit {s.limit_days} d"
            + (f" · median {days(s.median_days)} d" if s.median_days is not None else "")
            for s in stages
        ]
        y = list(range(len(stages)))
        for axis, on_track, at_risk, title, fmt in (
            (
                by_count,
                [s.on_track_deals for s in stages],
                [s.at_risk_deals for s in stages],
                "deals",
                _whole,
            ),
            (
                by_amount,
                [float(s.on_track_amount) for s in stages],
                [float(s.at_risk_amount) for s in stages],
                "amount",
                _short_amount,
            ),
        ):
            axis.barh(y, at_risk, color=AT_RISK_COLOR, label="at risk")
            axis.barh(y, on_track, left=at_risk, color=ON_TRACK_COLOR, label="on track")
            axis.set_title(title, loc="left", fontsize=9)
            axis.xaxis.set_major_locator(_locator(nbins=6, integer=True, min_n_ticks=2))
            axis.xaxis.set_major_formatter(lambda value, _pos, fmt=fmt: fmt(value))
            axis.tick_params(axis="y", length=0)
            for row, (risk, track) in enumerate(zip(at_risk, on_track, strict=True)):
                # The at-risk figure inside its bar, when the bar is wide enough to hold it.
                if risk and risk > (risk + track) * 0.12:
                    axis.text(
                        risk,
                        row,
                        f"{fmt(risk)} ",
                        va="center",
                        ha="right",
                        color="white",
                        fontsize=8,
                    )
        by_count.set_yticks(y, labels=labels)
        by_count.invert_yaxis()
        by_count.legend(
            loc="lower right", frameon=False, fontsize=8, ncols=2, bbox_to_anchor=(1.0, 1.02)
        )
        return _svg(
            figure, f"{pipeline.name}: on-track and at-risk deals and amount per stage", name
        )


def _whole(value: float) -> str:
    return f"{value:,.0f}"


def _short_amount(value: float | Decimal) -> str:
    value = float(value)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:,.1f}{suffix}"
    return f"{value:,.0f}"


def trend_chart(points: Sequence[HistoryPoint], name: str = "trend") -> Markup:
    """At-risk deals and amount per run, side by side (one scale each: two lines on twin axes
    hide each other when they move together)."""
    plt = _pyplot()
    with plt.rc_context(_RC):
        figure, (counts, amounts) = plt.subplots(
            1, 2, figsize=(10, 2.4), gridspec_kw={"wspace": 0.18}
        )
        x = list(range(len(points)))
        labels = [p.generated_at.strftime("%m-%d\n%H:%M") for p in points]
        for axis, values, color, title, fmt in (
            (
                counts,
                [p.totals.at_risk_deals for p in points],
                AT_RISK_COLOR,
                "at-risk deals",
                _whole,
            ),
            (
                amounts,
                [float(p.totals.at_risk_amount) for p in points],
                AMOUNT_COLOR,
                "at-risk amount",
                _short_amount,
            ),
        ):
            axis.plot(x, values, color=color, marker="o")
            axis.set_title(title, loc="left", fontsize=9)
            axis.set_ylim(bottom=0, top=max(values) * 1.15 or 1)
            axis.yaxis.set_major_locator(_locator(nbins=5, integer=True))
            axis.yaxis.set_major_formatter(lambda value, _pos, fmt=fmt: fmt(value))
            axis.set_xticks(x, labels=labels, fontsize=7)
            axis.grid(axis="y", color="#e0e0e0", linewidth=0.6)
        return _svg(figure, "at-risk deals and amount over the last comparable runs", name)


# --- the page -----------------------------------------------------------------------------------

_ENVIRONMENT = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_ENVIRONMENT.filters.update(count=count, amount=amount, days=days, percent=percent, instant=instant)

TEMPLATE = _ENVIRONMENT.from_string(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1b1b1b; margin: 0 auto; max-width: 1100px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px;
  border-bottom: 1px solid #ddd; padding-bottom: 4px; } h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: #555; margin: 0; } .meta dt { font-weight: 600; display: inline; }
.meta dd { display: inline; margin: 0 16px 0 4px; }
.status-SUCCEEDED { color: #2e7d32; } .status-FAILED { color: #c62828; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.tile { flex: 1 1 200px; border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; }
.tile .label { color: #555; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.tile .value { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tile.risk .value { color: #c62828; }
.tile .change { font-size: 12px; color: #555; } .change.worse { color: #c62828; }
.change.better { color: #2e7d32; }
figure { margin: 8px 0; } figure svg { width: 100%; height: auto; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: baseline; }
th { background: #f5f5f5; } td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
details summary { cursor: pointer; color: #1565c0; }
.note { color: #555; font-size: 12px; } .error { color: #c62828; font-weight: 600; }
td.deal { max-width: 320px; overflow-wrap: anywhere; } td.nw { white-space: nowrap; }
td.id { font: 11px ui-monospace, Menlo, Consolas, monospace; }
@media print { body { max-width: none; padding: 0; } details { display: block; }
  details > summary { display: none; } h2 { break-after: avoid; } figure, tr { break-inside: avoid; } }
</style>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<dl class="meta">
<dt>tenant</dt><dd>{% if tenant_name %}{{ tenant_name }} ({{ run.tenant_id }}){% else %}{{ run.tenant_id }}{% endif %}</dd>
<dt>run</dt><dd>{{ run.run_id }}</dd>
<dt>status</dt><dd class="status-{{ run.status }}">{{ run.status }}</dd><br>
<dt>as of</dt><dd>{{ as_of | instant }}</dd>
<dt>generated</dt><dd>{{ run.generated_at | instant }}</dd>
<dt>finished</dt><dd>{{ (run.finished_at | instant) or "-" }}</dd><br>
<dt>parameters</dt><dd>{{ parameters | join("; ") }}</dd>
</dl>
{% if run.error_message %}<p class="error">error: {{ run.error_message }}</p>{% endif %}
</header>
<main>
{% if run.status != "SUCCEEDED" %}
<p class="note">This run is {{ run.status }}: the report shows SUCCEEDED runs only.</p>
{% elif not facts %}
<p class="note">No open deals in scope: the run has no fact rows.</p>
{% else %}
<section aria-labelledby="headline">
<h2 id="headline">Headline</h2>
<div class="tiles">
{% for h in headlines %}
<div class="tile{% if h.label != 'open deals' %} risk{% endif %}">
<div class="label">{{ h.label }}</div>
<div class="value">{{ h.value }}</div>
{% if h.change is not none %}<div class="change{% if h.worse is true %} worse{% elif h.worse is false and h.change != '±0' %} better{% endif %}">{{ h.change }} since {{ previous.generated_at | instant }}</div>
{% else %}<div class="change">no earlier run with these parameters</div>{% endif %}
</div>
{% endfor %}
</div>
</section>

<section aria-labelledby="stages">
<h2 id="stages">Stages per pipeline</h2>
<p class="note">Red: at risk; green: on track. Stages with open deals, in display order; each label
gives the stage's limit and the median days deals have been in it.</p>
{% for pipeline, chart in pipeline_charts %}
<h3>{{ pipeline.name }}</h3>
<figure>{{ chart }}</figure>
<table>
<caption>{{ pipeline.name }}: per stage</caption>
<thead><tr><th scope="col">stage</th><th class="n" scope="col">limit (days)</th><th class="n" scope="col">median days</th>
<th class="n" scope="col">open deals</th><th class="n" scope="col">at risk</th><th class="n" scope="col">on track</th>
<th class="n" scope="col">% at risk</th><th class="n" scope="col">at-risk amount</th><th class="n" scope="col">on-track amount</th></tr></thead>
<tbody>
{% for s in pipeline.stages %}
<tr><th scope="row">{{ s.name }}</th><td class="n">{{ s.limit_days }}</td><td class="n">{{ (s.median_days | days) if s.median_days is not none else "—" }}</td>
<td class="n">{{ s.open_deals | count }}</td><td class="n">{{ s.at_risk_deals | count }}</td><td class="n">{{ s.on_track_deals | count }}</td>
<td class="n">{{ s.percent_at_risk | percent }}</td>
<td class="n">{{ s.at_risk_amount | amount }}</td><td class="n">{{ s.on_track_amount | amount }}</td></tr>
{% endfor %}
</tbody>
</table>
{% endfor %}
{% if owners %}<p class="note">Broken down by owner, the run has a median per owner and stage only
(a median does not add up): <code>python -m runner show {{ run.run_id }}</code> lists them.</p>{% endif %}
</section>

{% if trend_chart %}
<section aria-labelledby="trend">
<h2 id="trend">Trend</h2>
<figure>{{ trend_chart }}</figure>
<table>
<caption>At risk over the last {{ trend | length }} runs with these parameters</caption>
<thead><tr><th scope="col">run generated</th><th scope="col">run</th><th class="n" scope="col">open deals</th>
<th class="n" scope="col">at-risk deals</th><th class="n" scope="col">at-risk amount</th><th class="n" scope="col">% at risk</th></tr></thead>
<tbody>
{% for p in trend %}
<tr><td>{{ p.generated_at | instant }}</td><td>{{ p.run_id }}</td><td class="n">{{ p.totals.open_deals | count }}</td>
<td class="n">{{ p.totals.at_risk_deals | count }}</td><td class="n">{{ p.totals.at_risk_amount | amount }}</td>
<td class="n">{{ p.totals.percent_at_risk | percent }}</td></tr>
{% endfor %}
</tbody>
</table>
</section>
{% endif %}

{% if changes %}
<section aria-labelledby="changes">
<h2 id="changes">Since the previous run</h2>
<p>{% if previous_run_id %}Since run {{ previous_run_id }}{% else %}No earlier run with these parameters: every at-risk deal is new{% endif %}:
{{ change_counts | join(", ") }}.</p>
<table>
<caption>{% if changes | length > deal_rows %}The first {{ deal_rows }} of {{ changes | length | count }} changes{% else %}Every change ({{ changes | length | count }}){% endif %}: newly at risk, then still at risk (longest first), then recovered</caption>
<thead><tr><th scope="col">change</th><th scope="col">deal</th><th scope="col">pipeline</th><th scope="col">stage</th>
<th class="n" scope="col">amount</th><th scope="col">at risk since</th><th scope="col">why it recovered</th></tr></thead>
<tbody>
{% for c in change_table %}
<tr><td class="nw">{{ c[0] }}</td><td class="deal">{{ c[1] }}</td><td class="nw">{{ c[2] }}</td><td class="nw">{{ c[3] }}</td><td class="n">{{ c[4] }}</td>
<td class="nw">{{ c[5] }}</td><td>{{ c[6] }}</td></tr>
{% endfor %}
</tbody>
</table>
</section>
{% endif %}

<section aria-labelledby="deals">
<h2 id="deals">At-risk deals, furthest past their limit first</h2>
{% if deals %}
<table>
<caption>{% if deal_count > deals | length %}The first {{ deals | length | count }} of {{ deal_count | count }} at-risk deals ({{ (deal_count - deals | length) | count }} more not shown){% else %}All {{ deal_count | count }} at-risk deals{% endif %}</caption>
<thead><tr><th scope="col">deal</th><th scope="col">pipeline</th><th scope="col">stage</th><th scope="col">owner</th>
<th class="n" scope="col">amount</th><th class="n" scope="col">days in stage</th><th class="n" scope="col">in stage, all visits</th>
<th scope="col">limit (stage / open)</th><th class="n" scope="col">days past limit</th><th scope="col">why</th></tr></thead>
<tbody>
{% for d in deals %}
<tr><td class="deal">{{ d[0] }}</td><td class="nw">{{ d[1] }}</td><td class="nw">{{ d[2] }}</td><td class="id">{{ d[3] }}</td><td class="n">{{ d[4] }}</td>
<td class="n">{{ d[5] }}</td><td class="n">{{ d[6] }}</td><td class="nw">{{ d[7] }}</td><td class="n">{{ d[8] }}</td><td>{{ d[9] }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="note">No deal is at risk.</p>{% endif %}
</section>

{% if snoozed %}
<section aria-labelledby="snoozed">
<h2 id="snoozed">Snoozed deals, past their limit but not at risk</h2>
<table>
<caption>{{ snoozed | length | count }} snoozed deal{{ 's' if snoozed | length != 1 }}{% if snoozed | length >= deal_rows %} (the first {{ deal_rows }}){% endif %}, furthest past their limit first</caption>
<thead><tr><th scope="col">deal</th><th scope="col">pipeline</th><th scope="col">stage</th><th scope="col">owner</th>
<th class="n" scope="col">amount</th><th class="n" scope="col">days in stage</th><th scope="col">limit (stage / open)</th>
<th scope="col">snoozed until</th><th scope="col">reason</th></tr></thead>
<tbody>
{% for d in snoozed %}
<tr><td class="deal">{{ d[0] }}</td><td class="nw">{{ d[1] }}</td><td class="nw">{{ d[2] }}</td><td class="id">{{ d[3] }}</td><td class="n">{{ d[4] }}</td>
<td class="n">{{ d[5] }}</td><td class="nw">{{ d[6] }}</td><td class="nw">{{ d[7] }}</td><td>{{ d[8] }}</td></tr>
{% endfor %}
</tbody>
</table>
</section>
{% endif %}

{% if owners %}
<section aria-labelledby="owners">
<h2 id="owners">By owner</h2>
<table>
<caption>{% if owners | length > owner_rows %}The {{ owner_rows }} owners with the most at-risk deals, of {{ owners | length | count }}{% else %}Every owner ({{ owners | length | count }}){% endif %}, most at-risk deals first</caption>
<thead><tr><th scope="col">owner</th><th class="n" scope="col">open deals</th><th class="n" scope="col">at-risk deals</th>
<th class="n" scope="col">% at risk</th><th class="n" scope="col">at-risk amount</th><th class="n" scope="col">amount</th></tr></thead>
<tbody>
{% for o in owners[:owner_rows] %}
<tr><td class="id">{{ o.owner }}</td><td class="n">{{ o.totals.open_deals | count }}</td><td class="n">{{ o.totals.at_risk_deals | count }}</td>
<td class="n">{{ o.totals.percent_at_risk | percent }}</td><td class="n">{{ o.totals.at_risk_amount | amount }}</td>
<td class="n">{{ o.totals.total_amount | amount }}</td></tr>
{% endfor %}
</tbody>
</table>
</section>
{% endif %}
{% endif %}
</main>
<footer><p class="note">Deal Aging / At-Risk Deals report. Written {{ written | instant }}; a deal
is at risk when it has been in its stage longer than the stage's limit{% if cycle %}, or open
longer than the cycle limit{% endif %}. Amounts in the CRM's currency. Names are as the CRM has
them now.</p></footer>
</body>
</html>
"""
)


def render_page(data: PageData, written: datetime | None = None) -> str:
    run = data.run
    now = Totals.of_facts(data.facts)
    earlier = data.history
    previous = earlier[0] if earlier else None
    pipeline_names = {str(f["pipeline_id"]): f["pipeline_name"] for f in data.facts}
    stage_pipelines = pipelines(data.facts) if run["status"] == "SUCCEEDED" else []
    trend = [
        *reversed(earlier[: TREND_RUNS - 1]),
        HistoryPoint(run["run_id"], run["generated_at"], now),
    ]
    breakdown = (run["input_params"] or {}).get("breakdown") == "owner"
    title = f"At-risk deals: {data.tenant_name}" if data.tenant_name else "At-risk deals"
    return TEMPLATE.render(
        title=title,
        tenant_name=data.tenant_name,
        run=run,
        as_of=run["period_end"] or run["generated_at"],
        parameters=parameters_in_words(run, pipeline_names),
        facts=data.facts,
        headlines=headlines(now, previous.totals if previous else None),
        previous=previous,
        pipeline_charts=[
            (p, pipeline_chart(p, f"pipeline{number}"))
            for number, p in enumerate(stage_pipelines, start=1)
        ],
        trend=trend,
        trend_chart=trend_chart(trend) if len(trend) >= 2 and data.facts else None,
        deals=deal_rows(data.deals[:DEAL_ROWS]),
        deal_count=max(data.deal_count, len(data.deals)),
        snoozed=snoozed_rows(data.snoozed[:DEAL_ROWS]),
        changes=data.changes,
        change_counts=change_counts(data.changes),
        change_table=change_rows(data.changes[:DEAL_ROWS]),
        previous_run_id=data.changes[0]["previous_run_id"] if data.changes else None,
        deal_rows=DEAL_ROWS,
        owners=owners(data.facts) if breakdown else [],
        owner_rows=OWNER_ROWS,
        cycle=(run["input_params"] or {}).get("cycle_threshold_days") is not None,
        written=written or datetime.now().astimezone(),
    )


@dataclass(frozen=True)
class Written:
    path: Path
    bytes: int
    seconds: float


def write_page(
    conn: psycopg.Connection,
    tables: Tables,
    source_schema: str,
    run: dict[str, Any],
    path: Path,
    tenant_name: str | None = None,
) -> Written:
    """Read the run's page data, render it and write it to `path` (atomically: a reader never
    sees half a page)."""
    started = time.perf_counter()
    page = render_page(load_page(conn, tables, source_schema, run, tenant_name))
    data = page.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)
    return Written(path, len(data), time.perf_counter() - started)


def page_name(run: dict[str, Any]) -> str:
    """The file name of a run's page in a directory of pages: <tenant>-<run_id>.html."""
    return f"{run['tenant_id']}-{run['run_id']}.html"
