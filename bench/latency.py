"""Latency from submit to SUCCEEDED under an offered load, open loop: requests are submitted on
a fixed schedule whatever the workers complete, for a bounded time, then the stragglers are
waited for (a bounded time too; one never finished counts as infinitely late)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from uuid import UUID

import psycopg

from bench import databases, history, queued
from bench.scenarios import Setting
from bench.workers import Execution, workers

TARGET_RATE = 10.0  # requests per second at which the p95 target holds
TARGET_P95 = 1.0  # seconds
WORKERS = 2
DRAIN_SECONDS = 60.0  # the longest wait for the last requests once the schedule ends
WARM_UP_REQUESTS = 8  # per worker: its first requests pay for its caches


@dataclass(frozen=True)
class Latency:
    rate: float  # offered, requests per second
    seconds: float  # how long it was offered
    latencies: list[float]  # per request, seconds; math.inf for one never finished
    failed: int
    lag: float  # how far the submits fell behind their schedule, at most
    run_ids: list[UUID]
    executions: list[Execution] = field(default_factory=list)  # the workers' lines of them

    def median(self, seconds: Callable[[Execution], float]) -> float:
        """Over the workers' lines of these requests; nan when none was read."""
        return (
            statistics.median(seconds(e) for e in self.executions) if self.executions else math.nan
        )

    @property
    def mean_batch(self) -> float:
        return statistics.mean(e.batch for e in self.executions) if self.executions else math.nan

    def percentile(self, p: float) -> float:
        """Nearest rank: the smallest latency that p % of the requests did not exceed."""
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def offer(s: Setting, conn: psycopg.Connection, rate: float) -> Latency:
    count = max(1, round(rate * s.load.seconds_per_rate))
    requests = queued.varied([t.tenant_id for t in s.queue_tenants], count)
    submitted: dict[UUID, float] = {}
    done: dict[UUID, float] = {}
    failed, lag = 0, 0.0
    start = time.perf_counter()
    deadline = start + s.load.seconds_per_rate + DRAIN_SECONDS
    while len(done) < count and time.perf_counter() < deadline:
        while len(submitted) < count and start + len(submitted) / rate <= time.perf_counter():
            request = requests[len(submitted)]
            lag = max(lag, time.perf_counter() - start - len(submitted) / rate)
            submitted[request.run_id] = time.perf_counter()
            queued.submit_all(conn, [request])
        outstanding = [run_id for run_id in submitted if run_id not in done]
        for run_id, status in queued.finished(conn, outstanding).items():
            done[run_id] = time.perf_counter() - submitted[run_id]
            failed += status == "FAILED"
        time.sleep(queued.POLL_SECONDS)
    latencies = [done.get(r.run_id, math.inf) for r in requests]
    run_ids = [r.run_id for r in requests]
    return Latency(rate, s.load.seconds_per_rate, latencies, failed, lag, run_ids)


def all_rates(s: Setting) -> list[Latency]:
    """Each offered load in turn, on the same two warm workers (the default batch size)."""
    history.truncate_runs(s.big_db)
    history.settle(s.big_db)
    results = []
    with (
        databases.connect(s.big_db) as conn,
        workers(s.sides, s.big_db, WORKERS, s.logs_dir / "latency") as started,
    ):
        warm_up = queued.varied([t.tenant_id for t in s.queue_tenants], WARM_UP_REQUESTS * WORKERS)
        queued.submit_all(conn, warm_up)
        queued.wait_all(conn, [r.run_id for r in warm_up], DRAIN_SECONDS)
        for rate in s.load.rates:
            s.say(f"9: latency at {rate:g} requests/s for {s.load.seconds_per_rate:g} s")
            result = offer(s, conn, rate)
            s.say(
                f"    p50 {result.percentile(50):.3f} s, p95 {result.percentile(95):.3f} s,"
                f" p99 {result.percentile(99):.3f} s"
            )
            results.append(result)
    # Read after the workers stopped: a run's line is logged just after its header commits.
    executed = {e.run_id: e for w in started for e in w.executions()}
    return [
        replace(r, executions=[executed[i] for i in r.run_ids if i in executed]) for r in results
    ]
