"""The measurements of `make bench` (docs/performance.md), each a pair of sides measured in
alternation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

from bench import databases, history
from bench.pairs import Pairs, Side, measure
from bench.sides import Sides
from bench.sizes import BenchSize, QueueLoad

Say = Callable[[str], None]


@dataclass(frozen=True)
class Tenant:
    tenant_id: UUID
    deals: int


@dataclass(frozen=True)
class Setting:
    sides: Sides
    big_db: str
    small_db: str
    history_db: str
    worst_db: str
    big: Tenant
    small: Tenant
    tenants: int
    queue_tenants: tuple[Tenant, ...]  # the small tenants the warm-worker measurements ask for
    load: QueueLoad
    as_of: datetime  # the healthy data's "now"
    logs_dir: Path  # the warm workers' logs, kept for a look afterwards
    pairs: int
    warmups: int
    say: Say


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    pairs: Pairs
    target: float | None  # the highest ratio allowed, if the project sets one
    note: str = ""
    margin: float | None = None  # or the most seconds side A may take over side B

    @property
    def met(self) -> bool | None:
        if self.margin is not None:
            return self.pairs.a_median - self.pairs.b_median <= self.margin
        return None if self.target is None else self.pairs.ratio <= self.target


def ensure_baseline_table(database: str) -> None:
    """The baseline's scratch copy of the fact table: same columns, types, constraints, indexes."""
    with databases.connect(database) as conn:
        conn.execute(
            "create table if not exists dyno_crm.bench_baseline_fact"
            " (like dyno_crm.report_deal_aging_fact including all)"
        )
        conn.commit()


def runner_side(s: Setting, database: str, tenant: Tenant | None, label: str = "runner") -> Side:
    """The runner, on empty report tables: each measurement isolates one factor, and what
    earlier runs cost is measurement 5's alone."""
    tenant_id = tenant.tenant_id if tenant else None
    return Side(
        label,
        lambda: s.sides.runner(database, tenant_id),
        prepare=lambda: history.truncate_runs(database),
    )


def baseline_side(s: Setting, database: str, tenant: Tenant | None) -> Side:
    tenant_id = tenant.tenant_id if tenant else None
    return Side(
        "baseline",
        lambda: s.sides.baseline(database, tenant_id),
        prepare=lambda: ensure_baseline_table(database),
    )


def one_tenant(
    s: Setting, key: str, tenant: Tenant, label: str, warmups: int, target: float | None
) -> Row:
    s.say(f"{key}: one tenant, {label} ({tenant.deals:,} deals): runner vs baseline")
    pairs = _runner_against_baseline(s, tenant, warmups)
    return Row(key, f"one tenant, {label} ({tenant.deals:,} deals)", pairs, target)


def all_tenants(s: Setting, key: str, warmups: int) -> Row:
    s.say(f"{key}: every tenant ({s.tenants}), one invocation: runner vs baseline")
    pairs = _runner_against_baseline(s, None, warmups)
    return Row(key, f"every tenant ({s.tenants}) at night", pairs, 1.1)


def _runner_against_baseline(s: Setting, tenant: Tenant | None, warmups: int) -> Pairs:
    """Both sides on the big database, for one tenant or (None) every tenant."""
    return measure(
        runner_side(s, s.big_db, tenant),
        baseline_side(s, s.big_db, tenant),
        s.pairs,
        warmups,
        s.say,
    )


def worst_case(s: Setting, key: str, tenant: Tenant, target: float) -> Row:
    s.say(f"{key}: one tenant, big ({tenant.deals:,} deals), all-old data: runner vs baseline")
    pairs = measure(
        runner_side(s, s.worst_db, tenant),
        baseline_side(s, s.worst_db, tenant),
        s.pairs,
        s.warmups,
        s.say,
    )
    return Row(key, f"one tenant, big ({tenant.deals:,} deals), all-old data", pairs, target)


def tenant_not_table(s: Setting, key: str) -> Row:
    s.say(f"{key}: small tenant in the big database vs alone in a database of its own")
    pairs = measure(
        runner_side(s, s.big_db, s.small, "runner, big database"),
        runner_side(s, s.small_db, s.small, "runner, own database"),
        s.pairs,
        s.warmups,
        s.say,
    )
    return Row(key, "small tenant: in the big database / alone", pairs, 1.2)


def prepare_history(s: Setting, size: BenchSize, rebuild: bool) -> history.History | None:
    """The history database: the small tenant's data and `history_runs` earlier runs.

    Returns what was synthesized, or None when the database was reused.
    """
    from bench import dataset

    wanted = size.record("history")
    reusable = not rebuild and databases.exists(s.history_db)
    if reusable and databases.recorded(s.history_db) == wanted:
        s.say(f"{s.history_db}: reused ({size.history_runs:,} earlier runs)")
        s.sides.prime(s.history_db)
        return None
    s.say(f"{s.history_db}: building ({size.history_runs:,} earlier runs)")
    dataset.build(s.history_db, size, "history", s.say)
    s.sides.prime(s.history_db)
    s.sides.runner(s.history_db, s.small.tenant_id)  # makes the report tables; the template run
    with databases.connect(s.history_db) as conn:
        template = conn.execute(
            "select run_id from dyno_crm.report_run order by generated_at desc limit 1"
        ).fetchone()[0]
    made = history.synthesize(s.history_db, size.history_runs, template)
    with databases.connect(s.history_db) as conn:
        databases.record(conn, wanted)
        conn.commit()
    s.say(f"{s.history_db}: " + ", ".join(f"{t} {n:,} rows" for t, n in made.rows.items()))
    return made


def history_not_slower(s: Setting, key: str, runs: int) -> Row:
    s.say(f"{key}: small tenant after {runs:,} earlier runs vs on empty report tables")
    pairs = measure(
        Side(  # no truncation here: these tables keep their history
            f"runner, {runs:,} earlier runs",
            lambda: s.sides.runner(s.history_db, s.small.tenant_id),
        ),
        runner_side(s, s.small_db, s.small, "runner, empty tables"),
        s.pairs,
        s.warmups,
        s.say,
    )
    return Row(key, f"after {runs:,} earlier runs / on empty tables", pairs, 1.1)
