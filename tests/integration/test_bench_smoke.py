"""`python -m bench --smoke`: the benchmark runs end to end at its tiny size, prints its table
and leaves no database behind."""

from __future__ import annotations

import subprocess
import sys
import uuid

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
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        table = done.stdout
        assert "Medians of alternating pairs" in table
        for key in ("1 ", "2 ", "3 ", "4 ", "5 "):
            assert any(line.startswith(key) for line in table.splitlines()), (key, table)
        assert "Memory (peak RSS" in table
        assert "Where a runner run's time goes" in table
        plans = table.split("Plans (EXPLAIN ANALYZE")[1]
        explained = {tuple(line.split()[:2]) for line in plans.splitlines() if line.strip()}
        for tenant in ("small", "big"):
            for query in ("seed-reference", "report_deal_aging_fact", "report_deal_aging_deal"):
                assert (tenant, query) in explained, (tenant, query, plans)
        assert bench_databases(name) == []
    finally:
        for database in (name, f"{name}_small", f"{name}_history"):
            drop_database(database)
