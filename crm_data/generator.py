"""Deterministic, realistic demo data for the CRM source tables, loaded with COPY.

One DatasetSpec always yields byte-identical rows, UUIDs included: every value is drawn from
random.Random instances seeded by the spec, in a fixed order. Time is handled as integer
microseconds since the Unix epoch and formatted without datetime objects, because a million deals
with three stage rows each make datetime arithmetic the bottleneck.

Every tenant with at least PLANTED_MIN_DEALS deals starts with a few planted edge-case deals (the
report must cope with them): NULL amounts, a current stage entered after as_of (clock skew),
current stages entered exactly BOUNDARY_DAYS whole days before as_of. A dataset of two or more
tenants also holds one corrupt cross-tenant stage row (see DatasetSummary.corrupt_state_id).
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import random
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

import psycopg
from psycopg import sql

DEFAULT_SCHEMA = "dyno_crm"
DEFAULT_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
BOUNDARY_DAYS = (7, 14, 30, 60, 90)
PLANTED_MIN_DEALS = 20

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DDL_FILE = "crm_source_schema.sql"
_TABLES = ("pipeline", "pipeline_stage", "deal", "deal_pipeline_stage_state")
_PIPELINE_COLUMNS = ("id", "tenant_id", "name", "created_at")
_STAGE_COLUMNS = ("id", "tenant_id", "pipeline_id", "name", "display_order", "stage_state")
_DEAL_COLUMNS = (
    "id",
    "tenant_id",
    "pipeline_id",
    "name",
    "amount",
    "created_at",
    "owned_by_user_id",
    "owned_by_group_id",
    "assigned_user_id",
    "assigned_group_id",
)
_STATE_COLUMNS = (
    "id",
    "tenant_id",
    "deal_id",
    "pipeline_stage_id",
    "entered_at",
    "exited_at",
    "is_current",
)

_NULL = "\\N"
# Deal names read "Acme Corp - Expansion" with an en dash (U+2013), as the CRM's users type them.
_NAME_DASH = " \u2013 "
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_SECOND = 1_000_000
_US_PER_HOUR = 3_600 * _US_PER_SECOND
_US_PER_DAY = 24 * _US_PER_HOUR
_HISTORY_DAYS = 730
_PIPELINE_AGE_DAYS = (900, 1400)
_MEAN_STEP_DAYS = 14
_MIN_STEP_US = 2 * _US_PER_HOUR
_CHUNK_DEALS = 25_000
_PROGRESS_DEALS = 100_000  # a multiple of _CHUNK_DEALS

# A deal's fate is planned when it is created, the older the likelier closed; time running out
# at as_of then keeps some planned closes open. Tuned for about a third of all deals closed.
# Healthy datasets: the mean days an open deal waits in a stage before the team closes it, longer
# in later stages. Tuned so that a quarter to a third of open deals are past 30 days.
_PATIENCE_DAYS = 28
_PATIENCE_DAYS_PER_STAGE = 8
_CLOSED_ODDS_NEW = 0.1
_CLOSED_ODDS_OLD = 0.75  # at the far end of the history window
_WON_SHARE = 0.4  # of closed deals
_NULL_AMOUNT_ODDS = 0.05
_AMOUNT_SIGMA = 1.1  # log-normal: most deals 5k-50k, a tail past 1M
_ROUND_AMOUNT_ODDS = 0.8
_OWNER_USER_ODDS = 0.9
_OWNER_GROUP_ODDS = 0.3
_TEAM_OWNED_GROUP_ODDS = 0.8  # a deal without an owning user is mostly owned by a team
_ASSIGNED_USER_ODDS = 0.25
_ASSIGNED_GROUP_ODDS = 0.1
_PARTNER_PIPELINE_ODDS = 0.5

# uuid.UUID(int=bits, version=4) without building UUID objects: clear, then set, the version
# nibble and the variant bits.
_UUID4_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)

_TENANT_NAMES = (
    "Northwind Traders",
    "Contoso",
    "Fabrikam",
    "Tailspin Toys",
    "Adventure Works",
    "Wide World Importers",
    "Litware",
    "Proseware",
    "Lucerne Publishing",
    "Coho Winery",
    "Alpine Ski House",
    "Blue Yonder Airlines",
    "Fourth Coffee",
    "Humongous Insurance",
    "Trey Research",
    "Wingtip Toys",
    "Woodgrove Bank",
    "Relecloud",
    "Datum Corporation",
    "Consolidated Messenger",
)
_COMPANY_STEMS = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Wonka",
    "Cyberdyne",
    "Pied Piper",
    "Aperture",
    "Oscorp",
    "Massive Dynamic",
    "Monarch",
    "Dunder Mifflin",
    "Sterling Cooper",
    "Bluth",
    "Nakatomi",
    "Virtucon",
    "Gekko",
    "Paper Street",
    "Blue Sun",
    "Weyland",
    "Rekall",
    "Spacely",
    "Cogswell",
    "Genco",
)
_COMPANY_SUFFIXES = (
    "Corp",
    "Inc",
    "Industries",
    "Labs",
    "Systems",
    "Group",
    "Logistics",
    "Foods",
    "Health",
    "Holdings",
    "Energy",
    "Media",
    "Retail",
    "Analytics",
    "Robotics",
)

_COMPANIES = tuple(f"{stem} {suffix}" for stem in _COMPANY_STEMS for suffix in _COMPANY_SUFFIXES)


@dataclass(frozen=True)
class _PipelineTemplate:
    name: str
    stages: tuple[tuple[str, str], ...]  # (name, stage_state) in display_order
    deal_labels: tuple[str, ...]
    deal_weight: float
    median_amount: float


_NEW_BUSINESS = _PipelineTemplate(
    name="New Business",
    stages=(
        ("Qualification", "NOT_STARTED"),
        ("Discovery", "IN_PROGRESS"),
        ("Proposal", "IN_PROGRESS"),
        ("Negotiation", "IN_PROGRESS"),
        ("Closed Won", "DONE_SUCCESS"),
        ("Closed Lost", "DONE_FAILED"),
    ),
    deal_labels=("New Logo", "Expansion", "Platform Deal", "Pilot", "Enterprise Plan", "Team Plan"),
    deal_weight=0.6,
    median_amount=18_000,
)
_RENEWALS = _PipelineTemplate(
    name="Renewals",
    stages=(
        ("Upcoming", "NOT_STARTED"),
        ("In Review", "IN_PROGRESS"),
        ("Quote Sent", "IN_PROGRESS"),
        ("Renewed", "DONE_SUCCESS"),
        ("Churned", "DONE_FAILED"),
    ),
    deal_labels=("Annual Renewal", "Multi-year Renewal", "Renewal + Upsell"),
    deal_weight=0.3,
    median_amount=12_000,
)
_PARTNER = _PipelineTemplate(
    name="Partner",
    stages=(
        ("Registered", "IN_PROGRESS"),
        ("Co-Selling", "IN_PROGRESS"),
        ("Contracting", "IN_PROGRESS"),
        ("Partner Won", "DONE_SUCCESS"),
        ("Partner Lost", "DONE_FAILED"),
    ),
    deal_labels=("Reseller Deal", "Referral", "Marketplace Listing"),
    deal_weight=0.1,
    median_amount=25_000,
)


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate; equal specs give byte-identical data."""

    deals: int  # over all tenants
    seed: int = 1
    tenants: int = 3
    # The first tenant's share of the deals (e.g. 0.3); the others split the rest unevenly.
    # None: all tenants split unevenly, the first one the biggest.
    big_tenant_share: float | None = None
    # The dataset's "now": all history lies before it, apart from the planted clock-skew rows.
    as_of: datetime = DEFAULT_AS_OF
    # Deals of the first tenant whose previous stage row also stays current (a CRM bug the
    # report may have to survive); off by default because the CRM promises one current row.
    duplicate_current_rows: int = 0
    # A sales team that closes stalled deals: an open deal that has waited longer than its
    # patience in its stage is won or lost then, so about a quarter to a third of open deals are
    # past a 30-day limit, more in the later stages. Off: deals wait for ever (nearly all at risk).
    healthy: bool = False
    # Every tenant's deals within (low, high), both included, instead of the uneven split; the
    # total is still `deals`. None: the uneven split (big_tenant_share applies).
    deals_per_tenant: tuple[int, int] | None = None


@dataclass(frozen=True)
class StageSummary:
    stage_id: uuid.UUID
    name: str
    display_order: int
    stage_state: str


@dataclass(frozen=True)
class PipelineSummary:
    pipeline_id: uuid.UUID
    name: str
    stages: tuple[StageSummary, ...]  # in display_order


@dataclass(frozen=True)
class TenantSummary:
    tenant_id: uuid.UUID
    name: str
    deals: int
    open_deals: int  # current stage not DONE_SUCCESS / DONE_FAILED
    pipelines: tuple[PipelineSummary, ...]
    user_ids: tuple[uuid.UUID, ...]
    group_ids: tuple[uuid.UUID, ...]

    @property
    def stage_ids(self) -> tuple[uuid.UUID, ...]:
        return tuple(stage.stage_id for p in self.pipelines for stage in p.stages)


@dataclass(frozen=True)
class DatasetSummary:
    spec: DatasetSpec
    schema: str
    tenants: list[TenantSummary]
    pipelines: int  # row counts per table
    pipeline_stages: int
    deals: int
    deal_stage_states: int
    # The stage row of tenants[0] that points at a deal of another tenant; None with one tenant.
    corrupt_state_id: uuid.UUID | None
    generate_seconds: float  # building rows in Python
    load_seconds: float  # everything the database did: truncate, COPY, keys, ANALYZE

    def one_line(self) -> str:
        return (
            f"{self.schema}: {len(self.tenants)} tenants, {self.pipelines} pipelines, "
            f"{self.pipeline_stages} stages, {self.deals:,} deals, "
            f"{self.deal_stage_states:,} stage rows; generated in {self.generate_seconds:.1f} s, "
            f"loaded in {self.load_seconds:.1f} s"
        )


@dataclass(frozen=True)
class _Anchor:
    """A planted edge-case deal: always open, its current stage entered at a chosen instant."""

    kind: str  # "boundary", "clock_skew", "null_amount" or "duplicate_current"
    days: int = 0  # whole days before as_of, for "boundary"


@dataclass(frozen=True)
class _Pipeline:
    summary: PipelineSummary
    id_text: str
    created_us: int
    open_stage_ids: tuple[str, ...]  # stage id texts, in display_order
    won_stage_id: str
    lost_stage_id: str
    deal_labels: tuple[str, ...]
    deal_weight: float
    amount_mu: float


@dataclass(frozen=True)
class _TenantPlan:
    index: int
    tenant_id: uuid.UUID
    name: str
    deals: int
    seed: int
    pipelines: tuple[_Pipeline, ...]
    user_ids: tuple[uuid.UUID, ...]
    group_ids: tuple[uuid.UUID, ...]
    anchors: tuple[_Anchor, ...]  # the tenant's first deals are these planted ones


@dataclass(frozen=True)
class _Chunk:
    deal_text: str
    state_text: str
    deals: int
    open_deals: int
    state_rows: int


class _Clock:
    """Seconds spent per phase: generating rows in Python, or waiting on the database."""

    def __init__(self) -> None:
        self.seconds = {"generate": 0.0, "load": 0.0}

    @contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - started


@dataclass
class _TenantTotals:
    deals: int = 0
    open_deals: int = 0
    state_rows: int = 0
    first_deal_id: str | None = None

    def add(self, chunk: _Chunk) -> None:
        if self.first_deal_id is None:
            self.first_deal_id = chunk.deal_text.split("\t", 1)[0]
        self.deals += chunk.deals
        self.open_deals += chunk.open_deals
        self.state_rows += chunk.state_rows


def _uuid4_text(bits: int) -> str:
    digits = f"{(bits & _UUID4_KEEP) | _UUID4_SET:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _uuid4(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _epoch_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return (moment - _EPOCH) // timedelta(microseconds=1)


class _TimestampText:
    """COPY text of a UTC instant given in microseconds since the epoch; memoises the dates."""

    def __init__(self) -> None:
        self._dates: dict[int, str] = {}
        self._clock = [
            f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
        ]

    def __call__(self, us: int) -> str:
        day, us_of_day = divmod(us, _US_PER_DAY)
        second, fraction = divmod(us_of_day, _US_PER_SECOND)
        date = self._dates.get(day)
        if date is None:
            date = self._dates[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
        return f"{date} {self._clock[second]}.{fraction:06d}+00"


def _validate_schema_name(schema: str) -> None:
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"schema name {schema!r} does not match {_SCHEMA_NAME.pattern}")


def _validate_spec(spec: DatasetSpec) -> None:
    if spec.deals < 0:
        raise ValueError("deals must not be negative")
    if spec.tenants < 1:
        raise ValueError("tenants must be at least 1")
    if spec.big_tenant_share is not None and not 0 < spec.big_tenant_share <= 1:
        raise ValueError("big_tenant_share must lie in (0, 1]")
    if spec.duplicate_current_rows < 0:
        raise ValueError("duplicate_current_rows must not be negative")
    if spec.deals_per_tenant is not None:
        low, high = spec.deals_per_tenant
        if not 0 <= low <= high or not low * spec.tenants <= spec.deals <= high * spec.tenants:
            raise ValueError(
                f"deals_per_tenant {spec.deals_per_tenant} cannot split {spec.deals} deals"
                f" over {spec.tenants} tenants"
            )
    _epoch_us(spec.as_of)


def create_source_schema(conn: psycopg.Connection, schema: str = DEFAULT_SCHEMA) -> None:
    """Create the CRM source schema and tables (idempotent: the DDL uses IF NOT EXISTS)."""
    _validate_schema_name(schema)
    ddl = resources.files("crm_data").joinpath(_DDL_FILE).read_text(encoding="utf-8")
    # Validated above, so the quoted name cannot break out of the identifier.
    ddl = re.sub(r"\bdyno_crm\b", lambda _: f'"{schema}"', ddl)
    with conn.transaction():
        conn.execute(sql.SQL(ddl))


def _apportion(total: int, shares: Sequence[float]) -> list[int]:
    """Split total into integers proportional to shares (largest remainder)."""
    exact = [total * s / sum(shares) for s in shares]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _bounded_shares(total: int, weights: Sequence[float], low: int, high: int) -> list[int]:
    """Split total in proportion to weights, every part within [low, high]: what a part cannot
    take above high goes to the others, in the same proportions."""
    counts = [low] * len(weights)
    growing = list(range(len(weights)))
    while (left := total - sum(counts)) > 0:
        for i, extra in zip(growing, _apportion(left, [weights[i] for i in growing]), strict=True):
            counts[i] = min(high, counts[i] + extra)
        growing = [i for i in growing if counts[i] < high]
    return counts


def _tenant_deal_counts(spec: DatasetSpec, rng: random.Random) -> list[int]:
    if spec.deals_per_tenant is not None:
        # Weights from 0.01 rather than 0: a tenant's share never vanishes, nor their sum.
        return _bounded_shares(
            spec.deals, [0.01 + rng.random() for _ in range(spec.tenants)], *spec.deals_per_tenant
        )
    weights = sorted((0.2 + rng.random() for _ in range(spec.tenants)), reverse=True)
    if spec.big_tenant_share is None or spec.tenants == 1:
        return _apportion(spec.deals, weights)
    rest = sum(weights[1:])
    shares = [spec.big_tenant_share] + [(1 - spec.big_tenant_share) * w / rest for w in weights[1:]]
    return _apportion(spec.deals, shares)


def _tenant_name(index: int) -> str:
    name = _TENANT_NAMES[index % len(_TENANT_NAMES)]
    lap = index // len(_TENANT_NAMES)
    return name if lap == 0 else f"{name} {lap + 1}"


def _plan_pipeline(
    template: _PipelineTemplate, tenant_id: uuid.UUID, as_of_us: int, rng: random.Random
) -> _Pipeline:
    pipeline_id = _uuid4(rng)
    stages = tuple(
        StageSummary(_uuid4(rng), name, order, state)
        for order, (name, state) in enumerate(template.stages, start=1)
    )
    by_state = {s.stage_state: str(s.stage_id) for s in stages}
    age_days = rng.uniform(*_PIPELINE_AGE_DAYS)
    return _Pipeline(
        summary=PipelineSummary(pipeline_id, template.name, stages),
        id_text=str(pipeline_id),
        created_us=as_of_us - int(age_days * _US_PER_DAY),
        open_stage_ids=tuple(
            str(s.stage_id) for s in stages if not s.stage_state.startswith("DONE_")
        ),
        won_stage_id=by_state["DONE_SUCCESS"],
        lost_stage_id=by_state["DONE_FAILED"],
        deal_labels=template.deal_labels,
        deal_weight=template.deal_weight,
        amount_mu=math.log(template.median_amount),
    )


def _plan_anchors(spec: DatasetSpec, index: int, deals: int) -> tuple[_Anchor, ...]:
    duplicates = spec.duplicate_current_rows if index == 0 else 0
    if deals < PLANTED_MIN_DEALS + duplicates:
        if duplicates:
            raise ValueError(
                f"duplicate_current_rows={duplicates} needs at least "
                f"{PLANTED_MIN_DEALS + duplicates} deals in the first tenant, it has {deals}"
            )
        return ()
    return (
        *(_Anchor("boundary", days) for days in BOUNDARY_DAYS),
        *(_Anchor("clock_skew") for _ in range(2)),
        *(_Anchor("null_amount") for _ in range(3)),
        *(_Anchor("duplicate_current") for _ in range(duplicates)),
    )


def _plan_tenants(spec: DatasetSpec, rng: random.Random) -> list[_TenantPlan]:
    as_of_us = _epoch_us(spec.as_of)
    plans = []
    for index, deals in enumerate(_tenant_deal_counts(spec, rng)):
        tenant_id = _uuid4(rng)
        templates = [_NEW_BUSINESS, _RENEWALS]
        if rng.random() < _PARTNER_PIPELINE_ODDS:
            templates.append(_PARTNER)
        users = max(3, min(400, deals // 250 + 3))
        plans.append(
            _TenantPlan(
                index=index,
                tenant_id=tenant_id,
                name=_tenant_name(index),
                deals=deals,
                seed=rng.getrandbits(64),
                pipelines=tuple(_plan_pipeline(t, tenant_id, as_of_us, rng) for t in templates),
                user_ids=tuple(_uuid4(rng) for _ in range(users)),
                group_ids=tuple(_uuid4(rng) for _ in range(max(2, users // 8))),
                anchors=_plan_anchors(spec, index, deals),
            )
        )
    return plans


def tenant_ids(spec: DatasetSpec) -> list[uuid.UUID]:
    """The tenants a spec yields, in order, without generating their deals: load_dataset draws
    its plans first from the same seed."""
    _validate_spec(spec)
    return [plan.tenant_id for plan in _plan_tenants(spec, random.Random(spec.seed))]


class _DealGenerator:
    """Deals of one tenant and their stage history, as COPY text, in chunks."""

    def __init__(
        self, plan: _TenantPlan, as_of_us: int, timestamp: _TimestampText, healthy: bool = False
    ) -> None:
        self._plan = plan
        self._healthy = healthy
        self._rng = random.Random(plan.seed)
        self._as_of_us = as_of_us
        self._ts = timestamp
        self._tenant = str(plan.tenant_id)
        self._users = [str(u) for u in plan.user_ids]
        self._groups = [str(g) for g in plan.group_ids]
        total_weight = sum(p.deal_weight for p in plan.pipelines)
        self._pipeline_cumulative = list(
            itertools.accumulate(p.deal_weight / total_weight for p in plan.pipelines)
        )

    def chunks(self) -> Iterator[_Chunk]:
        for start in range(0, self._plan.deals, _CHUNK_DEALS):
            yield self._chunk(range(start, min(start + _CHUNK_DEALS, self._plan.deals)))

    def _chunk(self, indexes: range) -> _Chunk:
        deal_lines: list[str] = []
        state_lines: list[str] = []
        anchors = self._plan.anchors
        open_deals = 0
        for i in indexes:
            anchor = anchors[i] if i < len(anchors) else None
            open_deals += self._deal(anchor, deal_lines, state_lines)
        return _Chunk(
            deal_text="".join(deal_lines),
            state_text="".join(state_lines),
            deals=len(indexes),
            open_deals=open_deals,
            state_rows=len(state_lines),
        )

    def _deal(self, anchor: _Anchor | None, deal_lines: list[str], state_lines: list[str]) -> bool:
        rng = self._rng
        # hi: rounding may leave the last cumulative weight a hair under 1.
        pipeline = self._plan.pipelines[
            bisect.bisect(self._pipeline_cumulative, rng.random(), hi=len(self._plan.pipelines) - 1)
        ]
        deal_id = _uuid4_text(rng.getrandbits(128))
        if anchor is None:
            stages, entered = self._walk_forward(pipeline)
        else:
            stages, entered = self._walk_to_anchor(pipeline, anchor)
        null_amount = anchor is not None and anchor.kind == "null_amount"
        deal_lines.append(self._deal_line(deal_id, pipeline, entered[0], null_amount))
        duplicate = anchor is not None and anchor.kind == "duplicate_current"
        self._state_lines(state_lines, deal_id, stages, entered, duplicate)
        return stages[-1] not in (pipeline.won_stage_id, pipeline.lost_stage_id)

    def _planned_path(self, pipeline: _Pipeline, age_fraction: float) -> tuple[str, ...]:
        closed_odds = _CLOSED_ODDS_NEW + (_CLOSED_ODDS_OLD - _CLOSED_ODDS_NEW) * age_fraction
        fate = self._rng.random()
        if fate < closed_odds * _WON_SHARE:
            return (*pipeline.open_stage_ids, pipeline.won_stage_id)
        reached = pipeline.open_stage_ids[: self._depth(pipeline)]
        return (*reached, pipeline.lost_stage_id) if fate < closed_odds else reached

    def _depth(self, pipeline: _Pipeline, minimum: int = 1) -> int:
        """How many open stages a deal gets through, at least minimum."""
        return max(minimum, 1 + int(len(pipeline.open_stage_ids) * self._rng.random()))

    def _step_us(self) -> int:
        return _MIN_STEP_US + int(self._rng.expovariate(1 / (_MEAN_STEP_DAYS * _US_PER_DAY)))

    def _walk_forward(self, pipeline: _Pipeline) -> tuple[Sequence[str], list[int]]:
        """Create the deal within the history window and walk its planned path until as_of."""
        # Skewed towards recent deals, as in a growing business.
        age_fraction = self._rng.random() ** 1.3
        path = self._planned_path(pipeline, age_fraction)
        at = self._as_of_us - _US_PER_SECOND - int(_HISTORY_DAYS * _US_PER_DAY * age_fraction)
        entered = [at]
        for _ in path[1:]:
            at += self._step_us()
            if at >= self._as_of_us:
                break
            entered.append(at)
        walked = path[: len(entered)]
        if self._healthy and walked[-1] in pipeline.open_stage_ids:
            return self._close_when_stalled(pipeline, walked, entered)
        return walked, entered

    def _close_when_stalled(
        self, pipeline: _Pipeline, walked: Sequence[str], entered: list[int]
    ) -> tuple[Sequence[str], list[int]]:
        """Won or lost once the deal has waited past its patience, if that is before as_of."""
        depth = pipeline.open_stage_ids.index(walked[-1]) + 1
        patience_days = self._rng.expovariate(
            1 / (_PATIENCE_DAYS + _PATIENCE_DAYS_PER_STAGE * depth)
        )
        closed_at = entered[-1] + int(patience_days * _US_PER_DAY)
        if closed_at >= self._as_of_us:
            return walked, entered
        won = self._rng.random() < _WON_SHARE
        return (*walked, pipeline.won_stage_id if won else pipeline.lost_stage_id), [
            *entered,
            closed_at,
        ]

    def _walk_to_anchor(
        self, pipeline: _Pipeline, anchor: _Anchor
    ) -> tuple[Sequence[str], list[int]]:
        """Walk an open path backwards from the planted instant its current stage was entered."""
        rng = self._rng
        needs_previous = anchor.kind in ("clock_skew", "duplicate_current")
        path = pipeline.open_stage_ids[: self._depth(pipeline, minimum=2 if needs_previous else 1)]
        if anchor.kind == "boundary":
            current = self._as_of_us - anchor.days * _US_PER_DAY
        elif anchor.kind == "clock_skew":
            current = self._as_of_us + rng.randrange(_US_PER_SECOND, 2 * _US_PER_DAY)
        else:
            current = self._as_of_us - rng.randrange(_US_PER_HOUR, 60 * _US_PER_DAY)
        # Step back from as_of at the latest, so that even a skewed deal was created before it.
        at = min(current, self._as_of_us)
        entered = [current]
        for _ in path[1:]:
            at -= self._step_us()
            entered.append(at)
        entered.reverse()
        return path, entered

    def _deal_line(
        self, deal_id: str, pipeline: _Pipeline, created_us: int, null_amount: bool
    ) -> str:
        users, groups = self._users, self._groups
        name = f"{self._pick(_COMPANIES)}{_NAME_DASH}{self._pick(pipeline.deal_labels)}"
        amount = _NULL if null_amount else self._amount(pipeline)
        owner_user = self._maybe(_OWNER_USER_ODDS, users)
        owner_group = self._maybe(
            _OWNER_GROUP_ODDS if owner_user != _NULL else _TEAM_OWNED_GROUP_ODDS, groups
        )
        assigned_user = self._maybe(_ASSIGNED_USER_ODDS, users)
        assigned_group = self._maybe(_ASSIGNED_GROUP_ODDS, groups)
        return (
            f"{deal_id}\t{self._tenant}\t{pipeline.id_text}\t{name}\t{amount}\t"
            f"{self._ts(created_us)}\t{owner_user}\t{owner_group}\t{assigned_user}\t"
            f"{assigned_group}\n"
        )

    def _pick(self, items: Sequence[str]) -> str:
        # Cheaper than rng.choice, which matters at a few million picks.
        return items[int(self._rng.random() * len(items))]

    def _maybe(self, odds: float, items: Sequence[str]) -> str:
        """One of items with the given odds, else NULL."""
        return self._pick(items) if self._rng.random() < odds else _NULL

    def _amount(self, pipeline: _Pipeline) -> str:
        rng = self._rng
        if rng.random() < _NULL_AMOUNT_ODDS:
            return _NULL
        cents = int(rng.lognormvariate(pipeline.amount_mu, _AMOUNT_SIGMA) * 100)
        # Most quotes are round numbers; some carry cents from discounts and currency conversion.
        if rng.random() < _ROUND_AMOUNT_ODDS:
            cents = max(50_00, cents - cents % 50_00)
        return f"{cents // 100}.{cents % 100:02d}"

    def _state_lines(
        self,
        lines: list[str],
        deal_id: str,
        stages: Sequence[str],
        entered: list[int],
        duplicate_current: bool,
    ) -> None:
        getrandbits = self._rng.getrandbits
        owner = f"\t{self._tenant}\t{deal_id}\t"
        texts = [self._ts(us) for us in entered]
        last = len(stages) - 1
        for k in range(last + 1):
            still_current = k == last or (duplicate_current and k == last - 1)
            exited, flag = (_NULL, "t") if still_current else (texts[k + 1], "f")
            row_id = _uuid4_text(getrandbits(128))
            lines.append(f"{row_id}{owner}{stages[k]}\t{texts[k]}\t{exited}\t{flag}\n")


@dataclass(frozen=True)
class _Target:
    """The schema the rows go to, through the connection of the load's transaction."""

    conn: psycopg.Connection
    schema: str

    def table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)

    def tables(self) -> sql.Composed:
        return sql.SQL(", ").join(self.table(t) for t in _TABLES)

    def copy(self, table: str, columns: Sequence[str], text: str) -> None:
        # FREEZE (allowed as the tables were truncated in this transaction) spares the hint-bit
        # writes and the autovacuum that would otherwise follow the load: noise in a benchmark.
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT text, ENCODING 'UTF8', FREEZE)")
        statement = statement.format(  # type: ignore[assignment]
            self.table(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            copy.write(text.encode())


def _pipeline_text(plans: Sequence[_TenantPlan], ts: _TimestampText) -> str:
    return "".join(
        f"{p.id_text}\t{plan.tenant_id}\t{p.summary.name}\t{ts(p.created_us)}\n"
        for plan in plans
        for p in plan.pipelines
    )


def _stage_text(plans: Sequence[_TenantPlan]) -> str:
    return "".join(
        f"{s.stage_id}\t{plan.tenant_id}\t{p.id_text}\t{s.name}\t"
        f"{s.display_order}\t{s.stage_state}\n"
        for plan in plans
        for p in plan.pipelines
        for s in p.summary.stages
    )


def _summarise_tenant(plan: _TenantPlan, totals: _TenantTotals) -> TenantSummary:
    return TenantSummary(
        tenant_id=plan.tenant_id,
        name=plan.name,
        deals=totals.deals,
        open_deals=totals.open_deals,
        pipelines=tuple(p.summary for p in plan.pipelines),
        user_ids=plan.user_ids,
        group_ids=plan.group_ids,
    )


def load_dataset(
    conn: psycopg.Connection,
    spec: DatasetSpec,
    schema: str = DEFAULT_SCHEMA,
    progress: Callable[[str], None] | None = None,
) -> DatasetSummary:
    """Replace the contents of the four CRM source tables in `schema` with the spec's dataset.

    The tables must exist (see create_source_schema); they are truncated first. Everything
    happens in one transaction (a savepoint if the connection is already in one), so readers
    never see a half-loaded dataset and a failed load leaves the old rows in place.
    """
    _validate_schema_name(schema)
    _validate_spec(spec)
    rng = random.Random(spec.seed)
    plans = _plan_tenants(spec, rng)
    corrupt_state_id = _uuid4(rng)
    clock = _Clock()
    totals = [_TenantTotals() for _ in plans]

    with conn.transaction():
        with clock.timing("load"):
            target = _Target(conn, schema)
            conn.execute(sql.SQL("TRUNCATE {}").format(target.tables()))
            restore_keys = _drop_keys(target)
        run = _Run(target, _epoch_us(spec.as_of), _TimestampText(), clock, progress, spec.healthy)
        with clock.timing("load"):
            target.copy("pipeline", _PIPELINE_COLUMNS, _pipeline_text(plans, run.ts))
            target.copy("pipeline_stage", _STAGE_COLUMNS, _stage_text(plans))
        for plan, tenant_totals in zip(plans, totals, strict=True):
            _load_tenant(run, plan, tenant_totals, f"tenant {plan.index + 1}/{len(plans)}")
        with clock.timing("load"):
            corrupt_loaded = _load_corrupt_row(run, plans, totals, corrupt_state_id)
            run.say("recreating keys and indexes")
            for statement in restore_keys:
                conn.execute(statement)
            run.say("analyzing")
            conn.execute(sql.SQL("ANALYZE {}").format(target.tables()))

    return DatasetSummary(
        spec=spec,
        schema=schema,
        tenants=[_summarise_tenant(p, t) for p, t in zip(plans, totals, strict=True)],
        pipelines=sum(len(p.pipelines) for p in plans),
        pipeline_stages=sum(len(p.summary.stages) for plan in plans for p in plan.pipelines),
        deals=sum(t.deals for t in totals),
        deal_stage_states=sum(t.state_rows for t in totals) + int(corrupt_loaded),
        corrupt_state_id=corrupt_state_id if corrupt_loaded else None,
        generate_seconds=clock.seconds["generate"],
        load_seconds=clock.seconds["load"],
    )


@dataclass(frozen=True)
class _Run:
    """What the steps of one load share."""

    target: _Target
    as_of_us: int
    ts: _TimestampText
    clock: _Clock
    progress: Callable[[str], None] | None
    healthy: bool = False

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)


def _load_tenant(run: _Run, plan: _TenantPlan, totals: _TenantTotals, label: str) -> None:
    """Generate and COPY one tenant's deals chunk by chunk, so memory stays flat."""
    chunks = _DealGenerator(plan, run.as_of_us, run.ts, run.healthy).chunks()
    while True:
        with run.clock.timing("generate"):
            chunk = next(chunks, None)
        if chunk is None:
            return
        with run.clock.timing("load"):
            run.target.copy("deal", _DEAL_COLUMNS, chunk.deal_text)
            run.target.copy("deal_pipeline_stage_state", _STATE_COLUMNS, chunk.state_text)
        totals.add(chunk)
        if totals.deals == plan.deals or totals.deals % _PROGRESS_DEALS == 0:
            run.say(f"{label} ({plan.name}): {totals.deals:,}/{plan.deals:,} deals loaded")


def _load_corrupt_row(
    run: _Run, plans: Sequence[_TenantPlan], totals: Sequence[_TenantTotals], state_id: uuid.UUID
) -> bool:
    """Give the first tenant a current stage row on another tenant's deal, if there is one.

    The row is old enough to count as at risk, so a report that forgets to match tenant_id
    on its joins shows it.
    """
    foreign_deal_id = next((t.first_deal_id for t in totals[1:] if t.first_deal_id), None)
    if foreign_deal_id is None:
        return False
    owner = plans[0]
    stage_id = owner.pipelines[0].open_stage_ids[1]
    entered = run.ts(run.as_of_us - 45 * _US_PER_DAY - 7 * _US_PER_HOUR)
    text = f"{state_id}\t{owner.tenant_id}\t{foreign_deal_id}\t{stage_id}\t{entered}\t{_NULL}\tt\n"
    run.target.copy("deal_pipeline_stage_state", _STATE_COLUMNS, text)
    return True


_KEYS_QUERY = """
SELECT con.contype::text AS kind, t.relname AS table_name, con.conname AS name,
       pg_get_constraintdef(con.oid) AS definition
FROM pg_constraint con
JOIN pg_class t ON t.oid = con.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s AND t.relname = ANY(%(tables)s) AND con.contype IN ('p', 'f')
UNION ALL
SELECT 'i', t.relname, ix.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class ix ON ix.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s AND t.relname = ANY(%(tables)s)
  AND NOT EXISTS (
      SELECT FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.conrelid = t.oid
  )
ORDER BY 2, 3
"""


def _drop_keys(target: _Target) -> list[sql.SQL | sql.Composed]:
    """Drop the tables' primary keys, foreign keys and indexes; return what recreates them.

    COPY into the keyed tables pays random-UUID index inserts and foreign-key checks row by row;
    COPY without them, then building the same keys, is several times faster (docs/performance.md,
    "Demo data"). The definitions come from the catalog, so the recreated keys are exactly the
    ones dropped, names included.
    """
    rows = target.conn.execute(
        _KEYS_QUERY, {"schema": target.schema, "tables": list(_TABLES)}
    ).fetchall()
    drops: dict[str, list[sql.Composed]] = {"f": [], "p": [], "i": []}
    creates: dict[str, list[sql.SQL | sql.Composed]] = {"p": [], "i": [], "f": []}
    for kind, table, name, definition in rows:
        if kind == "i":
            drops[kind].append(sql.SQL("DROP INDEX {}").format(target.table(name)))
            creates[kind].append(sql.SQL(definition))
        else:
            alter = sql.SQL("ALTER TABLE {} {} CONSTRAINT {}")
            drops[kind].append(
                alter.format(target.table(table), sql.SQL("DROP"), sql.Identifier(name))
            )
            creates[kind].append(
                alter.format(target.table(table), sql.SQL("ADD"), sql.Identifier(name))
                + sql.SQL(" " + definition)
            )
    # Foreign keys go first and come back last: they depend on the primary keys they reference.
    for statement in (*drops["f"], *drops["p"], *drops["i"]):
        target.conn.execute(statement)
    return [*creates["p"], *creates["i"], *creates["f"]]


def _aware_datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset")
    return moment


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m crm_data.generator",
        description="Load a deterministic demo CRM dataset into the database named by the libpq "
        "environment variables (PGHOST, PGDATABASE, ...), creating the source schema first.",
    )
    parser.add_argument("--deals", type=int, required=True, help="deals over all tenants")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--schema", default=DEFAULT_SCHEMA)
    parser.add_argument(
        "--big-tenant-share", type=float, default=None, help="share of the first tenant, e.g. 0.3"
    )
    parser.add_argument(
        "--as-of",
        type=_aware_datetime,
        default=DEFAULT_AS_OF,
        help=f"the dataset's now, ISO 8601 with offset (default {DEFAULT_AS_OF.isoformat()})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    spec = DatasetSpec(
        deals=args.deals,
        seed=args.seed,
        tenants=args.tenants,
        big_tenant_share=args.big_tenant_share,
        as_of=args.as_of,
    )
    try:
        _validate_spec(spec)
        _validate_schema_name(args.schema)
    except ValueError as error:
        print(f"python -m crm_data.generator: {error}", file=sys.stderr)
        return 2
    with psycopg.connect("") as conn:
        create_source_schema(conn, args.schema)
        summary = load_dataset(
            conn, spec, args.schema, progress=lambda line: print(line, file=sys.stderr, flush=True)
        )
    print(summary.one_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
