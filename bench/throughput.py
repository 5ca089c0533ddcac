"""Throughput of two warm workers per batch size: a queue of small-tenant requests with varied
thresholds, filled before the workers start, drained; every run executed exactly once; a sample
of them equal to `python -m runner run` with the same parameters."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

from bench import databases, equality, history, queued
from bench.scenarios import Setting
from bench.workers import Execution, workers
from runner.domain.runs import RunRequest

TARGET = 40.0  # small-tenant runs per second
WORKERS = 2
SECONDS_PER_REQUEST = 1.0  # the longest wait for the queue, per request (a slow machine, batch 1)


@dataclass(frozen=True)
class Throughput:
    batch_size: int
    requests: int
    seconds: float  # from the first claim to the last run finished (the server's clock)
    headers: dict[tuple[str, int], int]  # (status, attempts) -> runs
    executions: list[Execution]  # the workers' log lines of these runs
    per_worker: list[int]

    @property
    def runs_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def exactly_once(self) -> bool:
        distinct = {e.run_id for e in self.executions}
        return (
            self.headers == {("SUCCEEDED", 1): self.requests}
            and len(self.executions) == len(distinct) == self.requests
        )

    @property
    def mean_batch(self) -> float:
        """nan when no line was read: the report still prints what was measured."""
        return statistics.mean(e.batch for e in self.executions) if self.executions else math.nan

    @property
    def dbt_seconds_per_run(self) -> float:
        """A batch's dbt invocation shared by its runs, averaged over the runs."""
        shares = [e.dbt_seconds / e.batch for e in self.executions]
        return statistics.mean(shares) if shares else math.nan


def measure(s: Setting, batch_size: int) -> tuple[Throughput, list[RunRequest]]:
    s.say(f"8: throughput, {WORKERS} workers, batch size {batch_size}, {s.load.requests} requests")
    history.truncate_runs(s.big_db)
    history.settle(s.big_db)
    tenants = [t.tenant_id for t in s.queue_tenants]
    # As of the data's "now" (period_end), so that a fresh `runner run` later computes the same.
    requests = queued.varied(tenants, s.load.requests, period_end=s.as_of)
    run_ids = [r.run_id for r in requests]
    logs = s.logs_dir / f"throughput-batch-{batch_size}"
    with databases.connect(s.big_db) as conn:
        queued.submit_all(conn, requests)
        with workers(s.sides, s.big_db, WORKERS, logs, "--batch-size", str(batch_size)) as started:
            queued.wait_all(conn, run_ids, 60 + SECONDS_PER_REQUEST * len(requests))
        # Read after the workers stopped: a run's line is logged just after its header commits.
        mine = set(run_ids)
        per_worker = [[e for e in w.executions() if e.run_id in mine] for w in started]
        result = Throughput(
            batch_size=batch_size,
            requests=len(requests),
            seconds=queued.drain_seconds(conn, run_ids),
            headers=queued.statuses(conn, run_ids),
            executions=[e for executed in per_worker for e in executed],
            per_worker=[len(executed) for executed in per_worker],
        )
    s.say(f"    {result.runs_per_second:.1f} runs/s, exactly once: {result.exactly_once}")
    return result, requests


def all_sizes(s: Setting) -> tuple[list[Throughput], equality.Sampled]:
    """Every batch size of the load, then a sample of the last queue compared with fresh runs."""
    results: list[Throughput] = []
    requests: list[RunRequest] = []
    for batch_size in s.load.batch_sizes:
        result, requests = measure(s, batch_size)
        results.append(result)
    s.say(f"8: {s.load.sampled} sampled runs against `runner run` with the same parameters")
    sample = random.Random(0).sample(requests, s.load.sampled)
    return results, equality.sampled(s.sides, s.big_db, sample)
