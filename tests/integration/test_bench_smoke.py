"""`python -m bench --smoke`: the benchmark runs end to end at its tiny size, prints its table
and leaves no database behind."""

from __future__ import annotations

import subprocess
import sys
import uuid

from bench.sizes import SMOKE
from runner.dbt.project import PROJECT_DIR

from .runner_process import runner_env
from .support import connect, drop_database, server_env


def bench_databases(prefix: str) -> list[str]:
    with connect("postgres") as admin:
        rows = admin.execute(
            "select datname from pg_database where datname like %s order by 1",
            (prefix.replace("_", r"\_") + "%",),
        ).fetchall()
    return [name for (name,) in rows]


def test_smoke_benchmark_prints_its_table_and_cleans_up():
    name = f"deal_aging_bench_test_{uuid.uuid4().hex[:10]}"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench", "--smoke", "--database", name],
            cwd=PROJECT_DIR,
            env=runner_env(server_env()),
            capture_output=True,
            text=True,
            timeout=900,  # a busy CI machine runs it beside the other tests
        )
        assert done.returncode == 0, done.stderr[-3000:]
        table = done.stdout
        assert "Medians of alternating pairs" in table
        lines = table.splitlines()
        for key in ("1 ", "2 ", "3 ", "4 ", "5 ", "7 ", "10 ", "11 "):
            assert any(line.startswith(key) for line in lines), (key, table)
        assert "Memory (peak RSS" in table
        # The warm workers' measurements, with batches of more than one run.
        queue = table.split("8   Throughput")[1].split("\n\n")[0].splitlines()
        sizes = [line.split() for line in queue if line.split()[0].isdigit()]
        load = SMOKE.queue
        assert [int(size[0]) for size in sizes] == list(load.batch_sizes), queue
        assert all(size[6] == "yes" for size in sizes), queue  # every run executed exactly once
        assert float(sizes[-1][4]) > 1, queue  # the mean batch: runs computed together
        equal = f"with the same parameters: {load.sampled} of {load.sampled} "
        assert equal in table, queue
        latency = table.split("9   Latency from submit to SUCCEEDED")[1].split("\n\n")[0]
        offered = [line.split()[0] for line in latency.splitlines()[2:]]
        assert offered == [f"{rate:g}/s" for rate in load.rates], latency
        first, then = load.rss_after
        assert f"after {first} runs" in table and f"after {then} runs" in table
        assert "Where a runner run's time goes" in table
        plans = table.split("Plans (EXPLAIN ANALYZE")[1]
        explained = {tuple(line.split()[:2]) for line in plans.splitlines() if line.strip()}
        for tenant in ("small", "big"):
            for query in ("seed-reference", "report_deal_aging_fact", "report_deal_aging_deal"):
                assert (tenant, query) in explained, (tenant, query, plans)
        assert bench_databases(name) == []
    finally:
        for database in (name, f"{name}_small", f"{name}_history", f"{name}_worst"):
            drop_database(database)
