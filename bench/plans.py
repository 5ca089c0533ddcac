"""EXPLAIN (ANALYZE, BUFFERS) of what a report run executes, next to the design's reference query.

The models' SQL is taken from a runner run's own debug log (executed_selects), and explained
right after that run, while its headers still carry its invocation id: the statement explained
is the one that run executed, parameters compiled in. Each plan is
written to a text file; `signature` condenses a plan to its scans, for the comparison.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import psycopg

from bench import databases
from bench.baseline import REFERENCE_QUERY, reference_params
from bench.processes import ChildRun

_DELETE_TARGET = re.compile(r'delete from\s+((?:"[^"]+"\.)*"[^"]+")', re.I)
_CREATE_TEMP = re.compile(
    r'create temporary (?:view|table)\s+"[^"]+"\s+as\s*\((.*)\)\s*;\s*$', re.S
)
_SCAN = re.compile(
    r"(Parallel )?(Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan|Bitmap Index Scan)"
    r"(?: using (\S+))? on (\S+).*?actual time=\S+ rows=(\d+) loops=(\d+)"
)
_JOIN_FILTER_REMOVED = re.compile(r"Rows Removed by Join Filter: (\d+)")


@dataclass(frozen=True)
class Plan:
    name: str  # seed-reference or a model's name
    tenant: str  # big, small
    path: Path
    execution_ms: float
    lines: list[str]

    def signature(self) -> str:
        """The plan's scans in order, e.g. `Index Only Scan ix_x on t (27020 rows x 7)`."""
        parts = []
        for line in self.lines:
            match = _SCAN.search(line)
            if match:
                parallel, kind, index, relation, rows, loops = match.groups()
                name = f"{index} on {relation}" if index else relation
                parts.append(f"{parallel or ''}{kind} {name} ({int(rows):,} rows x {loops})")
        removed = sum(
            int(m.group(1)) for line in self.lines if (m := _JOIN_FILTER_REMOVED.search(line))
        )
        if removed:
            parts.append(f"{removed:,} rows removed by join filters")
        return "; ".join(parts)


def executed_selects(run: ChildRun) -> dict[str, str]:
    """The SELECT each model of a runner run executed, by model name.

    From the run's JSON debug log (--verbose, DBT_LOG_FORMAT=json): dbt's incremental
    materialization first puts a model's select into a temporary relation, `create temporary
    view ... as (<select>)` for the replace_runs models (a table for other strategies), and that
    select is exactly what the run executed, parameters compiled in.
    """
    selects = {}
    for line in run.stderr.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event["info"]["name"] != "SQLQuery":
            continue
        match = _CREATE_TEMP.search(event["data"].get("sql", ""))
        node = event["data"].get("node_info", {}).get("node_name")
        if match and node:
            selects[node] = match.group(1)
    return selects


def explain(
    conn: psycopg.Connection, query: str, params: dict[str, object] | None = None
) -> list[str]:
    return [line for (line,) in conn.execute("explain (analyze, buffers) " + query, params)]


def capture(
    database: str,
    models: dict[str, str],
    tenants: dict[str, tuple[UUID, int]],
    out_dir: Path,
    note: str,
) -> list[Plan]:
    """Explain the reference query and every model for each tenant; write one file each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = []
    with databases.connect(database, autocommit=True) as conn:
        version = conn.execute("select version()").fetchone()[0]
        for label, (tenant, deals) in tenants.items():
            queries: dict[str, tuple[str, dict[str, object] | None]] = {
                "seed-reference": (REFERENCE_QUERY.read_text(), reference_params(tenant))
            }
            for name, text in models.items():
                queries[name] = (text, None)
            for name, (query, params) in queries.items():
                lines = explain(conn, query, params)
                path = out_dir / f"{label}-tenant-{name}.txt"
                header = [
                    f"-- {name}, {label} tenant ({deals:,} deals), database {database}; {note}",
                    f"-- EXPLAIN (ANALYZE, BUFFERS) on {version}",
                    f"-- by python -m bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                    "",
                ]
                path.write_text("\n".join(header + lines) + "\n")
                plans.append(Plan(name, label, path, _execution_ms(lines), lines))
    return plans


def capture_deletes(database: str, run: ChildRun, out_dir: Path) -> list[Plan]:
    """EXPLAIN (ANALYZE, BUFFERS) of the deletes a runner run made, on tables full of history.

    The statements come from the run's JSON debug log, as executed: each model's delete of its
    run's rows (the replace_runs strategy, the run ids written in), explained inside a
    transaction that is rolled back.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    statements: list[tuple[str, str]] = []
    for line in run.stderr.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        sql_text = event["data"].get("sql", "") if event["info"]["name"] == "SQLQuery" else ""
        body = re.sub(r"/\*.*?\*/", "", sql_text, flags=re.S).strip()
        node = event["data"].get("node_info", {}).get("node_name")
        if node and body.lower().startswith("delete"):
            # The strategy sends its delete and insert as one string: the delete alone.
            statements.append((node, body.split(";", 1)[0].strip()))
    plans = []
    with databases.connect(database) as conn:
        for node, statement in statements:
            target = _DELETE_TARGET.search(statement)
            with conn.transaction(force_rollback=True):
                rows = conn.execute(f"select count(*) from {target.group(1)}").fetchone()[0]  # type: ignore[union-attr]
                lines = explain(conn, statement)
            path = out_dir / f"history-{node}-delete.txt"
            header = [
                *(f"-- {line}" for line in statement.splitlines() if line.strip()),
                f"-- as the runner ran it; {node}: {rows:,} rows, nearly all of earlier runs"
                " (the run's own rows are still there, so this delete finds them)",
                "",
            ]
            path.write_text("\n".join(header + lines) + "\n")
            plans.append(Plan(f"{node} delete", "history", path, _execution_ms(lines), lines))
    return plans


def _execution_ms(lines: list[str]) -> float:
    for line in reversed(lines):
        if line.startswith("Execution Time:"):
            return float(line.split()[2])
    return float("nan")
