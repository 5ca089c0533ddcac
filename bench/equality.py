"""Whether a run a warm worker computed in a batch holds exactly the rows of `python -m runner
run` with the same parameters, in every table keyed by run_id (the facts and the deal list)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from uuid import UUID

from psycopg import sql

from bench import databases, history
from bench.sides import Sides
from runner.domain.runs import RunRequest

SCHEMA = "dyno_crm"


@dataclass
class Sampled:
    equal: int = 0
    compared_rows: dict[str, int] = field(default_factory=dict)  # per table, of the batched runs
    differences: list[str] = field(default_factory=list)


def rerun(sides: Sides, database: str, request: RunRequest) -> UUID:
    """The same parameters through a fresh `runner run`: its run_id."""
    params = request.params
    options = []
    if params.cycle_threshold_days is not None:
        options += ["--cycle-threshold-days", str(params.cycle_threshold_days)]
    if params.period_end is not None:
        options += ["--period-end", params.period_end.isoformat()]
    done = sides.runner(database, request.tenant_id, *options, threshold_days=params.threshold_days)
    return UUID(json.loads(done.stdout)["run_id"])


def compare(database: str, a: UUID, b: UUID) -> dict[str, tuple[int, int]]:
    """Per table keyed by run_id: the rows of run `a`, and the rows either run has that the other
    lacks, every column compared but run_id."""
    with databases.connect(database) as conn:
        found = {}
        for table in history.run_tables(conn, SCHEMA):
            columns = sql.SQL(", ").join(
                sql.Identifier(c)
                for c in history.column_names(conn, SCHEMA, table)
                if c != "run_id"
            )
            one_run = sql.SQL("select {} from {} where run_id = %s").format(
                columns, sql.Identifier(SCHEMA, table)
            )
            query = sql.SQL(
                "select (select count(*) from ({0}) r),"
                " (select count(*) from (({0} except all {0}) union all ({0} except all {0})) d)"
            ).format(one_run)
            rows, differing = conn.execute(query, (a, a, b, b, a)).fetchone()  # type: ignore[misc]
            found[table] = (rows, differing)
    return found


def sampled(sides: Sides, database: str, requests: list[RunRequest]) -> Sampled:
    """Re-run each request fresh and compare the two runs' rows."""
    result = Sampled()
    for each in requests:
        fresh = rerun(sides, database, each)
        found = compare(database, each.run_id, fresh)
        for table, (rows, _) in found.items():
            result.compared_rows[table] = result.compared_rows.get(table, 0) + rows
        differing = {table: n for table, (_, n) in found.items() if n}
        if differing:
            result.differences.append(f"run {each.run_id} and {fresh} differ: {differing}")
        else:
            result.equal += 1
    return result
