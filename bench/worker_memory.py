"""A warm worker's peak resident memory (VmHWM) after a few runs and after many: a worker that
keeps dbt loaded must not grow with the runs it serves."""

from __future__ import annotations

from dataclasses import dataclass

from bench import databases, history, queued
from bench.scenarios import Setting
from bench.workers import workers

TARGET = 1.1  # the most the peak may grow from the first count of runs to the second
SECONDS_PER_REQUEST = 1.0  # the longest wait for the queue, per request


@dataclass(frozen=True)
class WorkerMemory:
    runs: tuple[int, int]
    peak_mib: tuple[float, float]

    @property
    def ratio(self) -> float:
        return self.peak_mib[1] / self.peak_mib[0]


def measure(s: Setting) -> WorkerMemory:
    """One worker (the default batch size) served queues of small-tenant requests: its VmHWM once
    it has finished the first count of runs, and once it has finished the second."""
    first, total = s.load.rss_after
    s.say(f"12: a warm worker's peak RSS after {first:,} and after {total:,} runs")
    history.truncate_runs(s.big_db)
    history.settle(s.big_db)
    tenants = [t.tenant_id for t in s.queue_tenants]
    peaks = []
    with (
        databases.connect(s.big_db) as conn,
        workers(s.sides, s.big_db, 1, s.logs_dir / "memory") as (worker,),
    ):
        for count in (first, total - first):
            requests = queued.varied(tenants, count)
            queued.submit_all(conn, requests)
            queued.wait_all(conn, [r.run_id for r in requests], 60 + SECONDS_PER_REQUEST * count)
            peaks.append(worker.peak_rss_mib())
            s.say(f"    {peaks[-1]:.0f} MiB")
    history.truncate_runs(s.big_db)  # the next measurement starts on empty report tables
    return WorkerMemory((first, total), (peaks[0], peaks[1]))
