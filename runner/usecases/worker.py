"""`python -m runner worker`: a long-lived process that keeps dbt loaded (the project parsed once)
and computes the queued runs it claims in batches, one dbt invocation per batch; a lone request
runs at once. More throughput means more workers."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from runner.dbt import invocation
from runner.dbt.invocation import DbtSettings
from runner.domain.errors import DatabaseUnreachable, one_line
from runner.domain.runs import RunStatus
from runner.domain.timeouts import Timeouts
from runner.domain.vocabulary import DEFAULT_SOURCE_SCHEMA
from runner.store import headers, liveness, queue
from runner.store.channel import QUEUE_CHANNEL
from runner.store.connection import connect
from runner.store.tables import Tables
from runner.usecases.compute import ClosedPart, ComputeSettings, compute_runs
from runner.usecases.execute import ensure_setup

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 10.0
# Measured (measurement 8 of `make bench`, docs/performance.md): two workers on two cores complete
# 3, 26, 53 and 77 small-tenant runs per second with batches of 1, 10, 25 and 50.
DEFAULT_BATCH_SIZE = 50
# Every run of a batch is a literal in its SQL: the statements stay of a size PostgreSQL plans fast.
MAX_BATCH_SIZE = 1000


@dataclass(frozen=True)
class WorkerSettings:
    dbt: DbtSettings
    tables: Tables
    source_schema: str | None = None
    # The runs' bounds when their request recorded none.
    timeouts: Timeouts = field(default_factory=Timeouts.defaults)
    poll_seconds: float = 1.0
    # How often this worker looks for runs whose worker died (their liveness lock is gone).
    sweep_seconds: float = 10.0
    exit_when_idle: bool = False
    # The most queued runs one dbt invocation computes (docs/performance.md chose the default).
    batch_size: int = DEFAULT_BATCH_SIZE


@dataclass
class StopRequest:
    """Set by SIGTERM: the worker finishes the batch in hand and claims nothing new."""

    requested: bool = False

    def _request(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        log.info("SIGTERM: finishing the batch in hand, then stopping")

    @contextlib.contextmanager
    def on_sigterm(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGTERM, self._request)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


@dataclass
class Worker:
    settings: WorkerSettings
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    stop: StopRequest = field(default_factory=StopRequest)

    def serve(self) -> int:
        with self.stop.on_sigterm():
            started = time.perf_counter()
            manifest = invocation.parse(self.settings.dbt, self.settings.source_schema)
            # The parsed project lives as long as the worker: out of the garbage collector's sight,
            # a full collection no longer walks its objects in the middle of a request
            # (docs/decisions/frozen-heap.md).
            gc.collect()
            gc.freeze()
            log.info(f"worker {self.name}: dbt loaded in {time.perf_counter() - started:.2f}s")
            conn: psycopg.Connection | None = None
            next_sweep = 0.0
            try:
                while not self.stop.requested:
                    try:
                        if conn is None:
                            conn = self._connect(manifest)
                            if conn is None:
                                break
                            next_sweep = 0.0
                        if time.monotonic() >= next_sweep:
                            self._sweep(conn)
                            next_sweep = time.monotonic() + self.settings.sweep_seconds
                        claimed = queue.claim_batch(
                            conn,
                            self.settings.tables,
                            self.settings.source_schema or DEFAULT_SOURCE_SCHEMA,
                            self.settings.batch_size,
                        )
                        if not claimed:
                            if self.settings.exit_when_idle:
                                break
                            wait_for_notification(conn, self.settings.poll_seconds)
                            continue
                        if not self._execute(conn, manifest, claimed):
                            return 1
                    except psycopg.OperationalError as exc:
                        # The database went away (restart, failover): the runs in hand, if any,
                        # lost their liveness locks with the session and go back to the queue at
                        # the first sweep after the reconnect.
                        log.info(
                            f"worker {self.name}: lost the database ({one_line(str(exc), 300)}); reconnecting"
                        )
                        with contextlib.suppress(Exception):
                            conn.close()  # type: ignore[union-attr]
                        conn = None
            finally:
                if conn is not None:
                    conn.close()
        log.info(f"worker {self.name}: stopped")
        return 0

    def _connect(self, manifest: Manifest) -> psycopg.Connection | None:
        """A listening connection, retried with backoff until it works or the worker stops."""
        backoff = 0.5
        while not self.stop.requested:
            try:
                conn = connect(
                    application_name=f"deal-aging-worker {self.name}",
                    timeouts=self.settings.timeouts,
                )
                ensure_setup(
                    conn,
                    self.settings.tables,
                    self.settings.dbt,
                    self.settings.source_schema,
                    manifest,
                    timeouts=self.settings.timeouts,
                )
                conn.execute(sql.SQL("listen {}").format(sql.Identifier(QUEUE_CHANNEL)))
                conn.commit()
                return conn
            except (DatabaseUnreachable, psycopg.OperationalError) as exc:
                log.info(
                    f"worker {self.name}: {one_line(str(exc), 300)}; retrying in {backoff:.1f}s"
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        return None

    def _sweep(self, conn: psycopg.Connection) -> None:
        swept = liveness.sweep(conn, self.settings.tables, 0, queued_only=True)
        for run_id in swept.requeued:
            log.info(f"worker {self.name}: run {run_id} requeued (its worker is gone)")
        for run_id in swept.failed:
            log.info(f"worker {self.name}: run {run_id} FAILED (its worker died too often)")

    def _execute(
        self, conn: psycopg.Connection, manifest: Manifest, batch: list[queue.ClaimedRun]
    ) -> bool:
        """Compute a claimed batch in one dbt invocation (in parts when it fails as a whole); False
        when Ctrl-C asks the worker to stop at once."""
        tables = self.settings.tables
        started = time.perf_counter()
        claimed = {run.run_id: run for run in batch}
        settings = ComputeSettings(
            self.settings.dbt,
            tables,
            self.settings.source_schema,
            batch[0].timeouts or self.settings.timeouts,
            manifest,
        )

        def closed(part: ClosedPart) -> None:
            for ended in headers.outcomes(conn, tables, part.run_ids):
                run = claimed[ended.run_id]
                status = (
                    f"SUCCEEDED rows={ended.fact_rows}"
                    if ended.status == RunStatus.SUCCEEDED
                    else f"{ended.status} ({(ended.error_message or '')[:200]})"
                )
                log.info(
                    f"worker {self.name}: run {run.run_id} tenant {run.tenant_id} {status}"
                    f" attempt={run.attempts} queued={run.waited_s:.3f}s"
                    f" dbt={part.dbt_seconds:.3f}s total={time.perf_counter() - started:.3f}s"
                    f" batch={len(part.run_ids)}"
                )
            queue.release(conn, part.run_ids)

        computed = compute_runs(conn, settings, list(claimed), on_closed=closed)
        if computed.interruption is None:
            return True
        headers.requeue(conn, tables, computed.unfinished, f"requeued: {computed.interruption}")
        queue.release(conn, computed.unfinished)
        log.info(
            f"worker {self.name}: {computed.interruption};"
            f" {len(computed.unfinished)} run(s) requeued: {', '.join(map(str, computed.unfinished))}"
        )
        return False


def wait_for_notification(conn: psycopg.Connection, timeout: float) -> None:
    """Sleep until a request is queued (NOTIFY) or the timeout passes, whichever comes first."""
    for _ in conn.notifies(timeout=timeout, stop_after=1):
        pass
