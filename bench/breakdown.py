"""Where a runner process spends its time, from dbt's own structured log.

One extra runner run with --verbose (dbt logs at debug level) and DBT_LOG_FORMAT=json: every event
carries a timestamp with microseconds, and every statement dbt sends its elapsed time. Together
with the runner's --json timings and the process's own start and exit, that splits the wall clock
into: interpreter start and the runner's imports, the report_run header, importing dbt, dbt's
start-up and (partial) parsing, relation cache and on-run-start hook, each model (compilation,
then its SQL by kind), the on-run-end hook, and the runner's final bookkeeping and exit.
Debug logging itself costs a little, so this run is a bit slower than the measured ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from bench.processes import ChildRun


@dataclass
class Breakdown:
    wall: float
    parts: list[tuple[str, float]] = field(default_factory=list)
    sql: dict[str, float] = field(default_factory=dict)  # statement kind -> seconds, summed
    parse_note: str = ""

    def add(self, label: str, seconds: float) -> None:
        self.parts.append((label, max(0.0, seconds)))


def _ts(event: dict) -> float:
    return datetime.fromisoformat(event["info"]["ts"].replace("Z", "+00:00")).timestamp()


def _kind(statement: str) -> str:
    body = re.sub(r"/\*.*?\*/", "", statement, flags=re.S).strip().lower()
    if body.startswith("create temporary table") or body.startswith("create temp table"):
        return "compute (create temporary table as select)"
    if body.startswith("delete") and "insert into" in body:
        return "merge: delete + insert (one statement string)"
    if body.startswith("delete"):
        return "merge: delete"
    if body.startswith("insert"):
        return "merge: insert"
    if body.startswith("update"):
        return "headers (update report_run)"
    if body in ("begin", "commit", "rollback"):
        return "transaction control"
    return "introspection (catalog, schema checks)"


def analyse(run: ChildRun) -> Breakdown:
    events = []
    for line in run.stderr.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    result = json.loads(run.stdout)
    timings = (result[0] if isinstance(result, list) else result)["timings"]
    by_name: dict[str, list[dict]] = {}
    for event in events:
        by_name.setdefault(event["info"]["name"], []).append(event)

    start = run.started_at
    end = start + run.seconds
    dbt_first = _ts(by_name["MainReportVersion"][0])
    found = _ts(by_name["FoundStats"][0])
    node_starts = [_ts(e) for e in by_name.get("NodeStart", [])]
    node_ends = [_ts(e) for e in by_name.get("NodeFinished", [])]
    done = _ts(by_name["CommandCompleted"][0])
    # The runner times its own steps from the start of execute_runs; dbt's call ends at `done`.
    dbt_call = done - timings["dbt_s"]
    runs_start = dbt_call - timings["header_s"]

    breakdown = Breakdown(wall=run.seconds)
    breakdown.add("interpreter start, runner imports, arguments", runs_start - start)
    breakdown.add("report_run header (connect, lock, insert, commit)", timings["header_s"])
    breakdown.add("import dbt, dbtRunner and click set-up", dbt_first - dbt_call)
    breakdown.add("dbt start-up: flags, profile, adapter, partial parse", found - dbt_first)
    first_node, last_node = min(node_starts, default=found), max(node_ends, default=found)
    breakdown.add("relation cache, on-run-start hook (adopt headers)", first_node - found)
    compiling = _node_spans(by_name, "NodeCompiling", "NodeExecuting")
    breakdown.add(
        f"models ({len(node_starts)}, on {len(set(_threads(by_name)))} threads): wall",
        last_node - first_node,
    )
    for name, seconds in compiling.items():
        breakdown.add(f"  compile {name} (Jinja, ephemeral CTEs)", seconds)
    breakdown.add("on-run-end hook, connections closed", done - last_node)
    breakdown.add("after dbt: mark SUCCEEDED, count facts, print, exit", end - done)

    for event in by_name.get("SQLQueryStatus", []):
        elapsed = float(event["data"].get("elapsed", 0))
        statement = _statement_before(events, event)
        kind = _kind(statement)
        node = event["data"].get("node_info", {}).get("node_name", "")
        key = f"{node}: {kind}" if node else f"dbt: {kind}"
        breakdown.sql[key] = breakdown.sql.get(key, 0.0) + elapsed
    notes = [e["info"]["msg"] for e in events if "partial pars" in e["info"]["msg"].lower()]
    breakdown.parse_note = " / ".join(dict.fromkeys(notes))
    return breakdown


def _threads(by_name: dict[str, list[dict]]) -> list[str]:
    return [e["info"]["thread"] for e in by_name.get("NodeStart", [])]


def _node_spans(by_name: dict[str, list[dict]], first: str, second: str) -> dict[str, float]:
    starts = {e["data"]["node_info"]["node_name"]: _ts(e) for e in by_name.get(first, [])}
    ends = {e["data"]["node_info"]["node_name"]: _ts(e) for e in by_name.get(second, [])}
    return {name: ends[name] - starts[name] for name in starts if name in ends}


def _statement_before(events: list[dict], status: dict) -> str:
    """The SQL of the SQLQuery event that this status answers: the last one on its thread."""
    thread = status["info"]["thread"]
    index = events.index(status)
    for event in reversed(events[:index]):
        if event["info"]["thread"] == thread and event["info"]["name"] == "SQLQuery":
            return event["data"].get("sql", "")
    return ""
