"""Computing runs whose headers are IN_PROGRESS: one dbt invocation for all of them, and, when that
invocation fails them all together, smaller invocations (halves, then halves of those) until each
failure is a run's own. Shared by `run` and the workers (docs/decisions/bisected-batches.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

import psycopg

from runner.dbt import invocation
from runner.domain.errors import RunnerError, one_line
from runner.domain.interruptions import interruption_reason
from runner.domain.runs import RunStatus
from runner.domain.timeouts import Timeouts
from runner.store import headers
from runner.store.connection import connect
from runner.store.tables import Tables

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClosedPart:
    """Runs that one dbt invocation closed (SUCCEEDED or FAILED), and what that invocation took."""

    run_ids: list[UUID]
    dbt_seconds: float


@dataclass(frozen=True)
class Computation:
    closed: list[ClosedPart]
    # Set when Ctrl-C or SIGTERM stopped dbt: why, and the runs it left IN_PROGRESS.
    interruption: str | None = None
    unfinished: list[UUID] = field(default_factory=list)


@dataclass(frozen=True)
class ComputeSettings:
    dbt: invocation.DbtSettings
    tables: Tables
    source_schema: str | None
    timeouts: Timeouts
    # A warm worker's parsed project; None: dbt loads it.
    manifest: Manifest | None = None


def compute_runs(
    conn: psycopg.Connection,
    settings: ComputeSettings,
    run_ids: list[UUID],
    on_closed: Callable[[ClosedPart], None] | None = None,
) -> Computation:
    """Close every run: the on-run-end hook closes those it reaches, and what dbt left unfinished
    is marked FAILED. Raises psycopg.OperationalError when the database went away, leaving the
    runs to whoever holds their liveness locks."""
    parts = [run_ids]
    closed: list[ClosedPart] = []
    while parts:
        part = parts.pop(0)
        started = time.perf_counter()
        outcome = _invoke(settings, part, headers.track_changes(conn, settings.tables, part))
        seconds = time.perf_counter() - started
        if outcome.interrupted:
            unfinished = [run_id for rest in [part, *parts] for run_id in rest]
            return Computation(closed, outcome.message, unfinished)
        if not outcome.success and _failed_together(conn, settings.tables, part):
            log.info(
                "%d runs failed together (%s); computing them in halves", len(part), outcome.message
            )
            headers.reopen(conn, settings.tables, part)
            half = len(part) // 2
            parts[:0] = [part[:half], part[half:]]
            continue
        fail_unfinished(
            conn, settings.tables, part, outcome.message or "dbt ended before closing the run"
        )
        done = ClosedPart(part, seconds)
        closed.append(done)
        if on_closed is not None:
            on_closed(done)
    return Computation(closed)


def _invoke(
    settings: ComputeSettings, run_ids: list[UUID], track_changes: bool
) -> invocation.DbtOutcome:
    try:
        return invocation.run_report(
            settings.dbt,
            run_ids,
            settings.source_schema,
            settings.timeouts,
            settings.manifest,
            track_changes,
        )
    except KeyboardInterrupt as exc:
        return invocation.DbtOutcome(False, interruption_reason(exc), interrupted=True)
    except Exception as exc:
        return invocation.DbtOutcome(False, one_line(f"{type(exc).__name__}: {exc}"))


def _failed_together(conn: psycopg.Connection, tables: Tables, run_ids: list[UUID]) -> bool:
    """No run of several succeeded: the failure may be one run's that the others shared (a header
    dbt refused, a bound the whole invocation ran into), so each deserves a try of its own. A
    failure of one run's own data fails that run alone (docs/decisions/per-run-isolation.md).
    Reading the headers also tells whether the database is still there."""
    ended = headers.outcomes(conn, tables, run_ids)
    return len(run_ids) > 1 and not any(o.status == RunStatus.SUCCEEDED for o in ended)


def fail_unfinished(
    conn: psycopg.Connection, tables: Tables, run_ids: list[UUID], reason: str
) -> None:
    """Mark the runs still open FAILED, on a new connection when the runs' own died with the
    failure. Never raises: a run it cannot reach stays IN_PROGRESS for `sweep`."""
    for attempt in ("the runs' connection", "a new connection"):
        try:
            if attempt == "a new connection" or conn.closed or conn.broken:
                conn = connect()
            else:
                conn.rollback()
            headers.mark_failed(conn, tables, run_ids, reason, unfinished_only=True)
            return
        except (psycopg.Error, RunnerError) as exc:
            log.warning(
                "could not mark run(s) FAILED through %s: %s", attempt, one_line(str(exc), 300)
            )
