"""What changed since the previous run (report_deal_aging_change): with changes track, a run lists
each deal newly at risk, still at risk (since when) and recovered (why), through `dbt run`, the
runner and a warm worker; by default it lists nothing, and the report's figures never change."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from dbt_common.invocation import get_invocation_id

from crm_data.generator import DatasetSpec, create_source_schema, load_dataset

from .report_checks import assert_run_matches_oracle, header, runs_of_invocation
from .runner_process import run_runner
from .support import (
    DEAL_TABLE,
    Dbt,
    connect,
    create_database,
    drop_database,
    row_counts,
    server_env,
)

CHANGE_TABLE = "dyno_crm.report_deal_aging_change"
FIRST, SECOND, THIRD = "2026-10-20T00:00:00Z", "2026-10-22T00:00:00Z", "2026-10-23T00:00:00Z"


def at_risk(db: psycopg.Connection, run_id: Any) -> set[UUID]:
    rows = db.execute(
        f"select deal_id from {DEAL_TABLE} where run_id = %s and not is_snoozed", (run_id,)
    )
    return {deal_id for (deal_id,) in rows}


def changes(db: psycopg.Connection, run_id: Any) -> dict[UUID, dict[str, Any]]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(f"select * from {CHANGE_TABLE} where run_id = %s", (run_id,))
        return {row["deal_id"]: row for row in rows}


def of_type(rows: dict[UUID, dict[str, Any]], change_type: str) -> set[UUID]:
    return {deal for deal, row in rows.items() if row["change_type"] == change_type}


@pytest.fixture
def crm_env() -> Iterator[dict[str, str]]:
    """A database of its own: the test moves deals in its CRM."""
    name = create_database("deal_aging_changes")
    try:
        with connect(name) as conn:
            create_source_schema(conn)
            load_dataset(conn, DatasetSpec(deals=400, tenants=1, seed=11))
            conn.commit()
        yield server_env() | {"PGDATABASE": name}
    finally:
        drop_database(name)


def run(env: dict[str, str], *args: str) -> str:
    done = run_runner(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def move(db: psycopg.Connection, deal_id: UUID, stage_state: str, when: str) -> None:
    """The deal leaves its current stage for another of its pipeline in the given state."""
    db.execute(
        "update dyno_crm.deal_pipeline_stage_state set is_current = false, exited_at = %s"
        " where deal_id = %s and is_current",
        (when, deal_id),
    )
    db.execute(
        "insert into dyno_crm.deal_pipeline_stage_state"
        " (id, tenant_id, deal_id, pipeline_stage_id, entered_at, exited_at, is_current)"
        " select gen_random_uuid(), d.tenant_id, d.id, s.id, %s, null, true"
        " from dyno_crm.deal d"
        " join lateral (select id from dyno_crm.pipeline_stage s"
        "   where s.pipeline_id = d.pipeline_id and s.stage_state = %s"
        "   and s.id not in (select pipeline_stage_id from dyno_crm.deal_pipeline_stage_state"
        "     where deal_id = d.id)"
        "   order by s.display_order limit 1) s on true"
        " where d.id = %s",
        (when, stage_state, deal_id),
    )


def test_runner_and_worker_track_changes(crm_env, tmp_path):
    with connect(crm_env["PGDATABASE"], autocommit=True) as db:
        [tenant] = [str(t) for (t,) in db.execute("select distinct tenant_id from dyno_crm.deal")]
        base = ["--tenant-id", tenant, "--threshold-days", "30", "--changes", "track"]
        first = run(crm_env, "run", *base, "--period-end", FIRST)
        first_changes = changes(db, first)
        assert first_changes and of_type(first_changes, "NEWLY_AT_RISK") == at_risk(db, first)
        assert {row["previous_run_id"] for row in first_changes.values()} == {None}

        won, moved = sorted(at_risk(db, first))[:2]
        move(db, won, "DONE_SUCCESS", "2026-10-21T00:00:00Z")
        move(db, moved, "IN_PROGRESS", "2026-10-21T00:00:00Z")
        # A run with other parameters between them is no one's previous run.
        run(crm_env, "run", "--tenant-id", tenant, "--threshold-days", "10", "--changes", "track")

        second = run(crm_env, "run", *base, "--period-end", SECOND)
        rows = changes(db, second)
        now, before = at_risk(db, second), at_risk(db, first)
        assert {row["previous_run_id"] for row in rows.values()} == {UUID(first)}
        assert of_type(rows, "NEWLY_AT_RISK") == now - before
        assert of_type(rows, "STILL_AT_RISK") == now & before != set()
        assert of_type(rows, "RECOVERED") == before - now == {won, moved}
        assert (rows[won]["recovery_reason"], rows[moved]["recovery_reason"]) == (
            "WON",
            "MOVED_STAGE",
        )
        still = rows[min(now & before)]
        assert (still["first_flagged_run_id"], still["first_flagged_at"].isoformat()) == (
            UUID(first),
            "2026-10-20T00:00:00+00:00",
        )
        # Tracking changes changes no figure: the report is still the reference query's.
        assert assert_run_matches_oracle(db, header(db, second))

        # A warm worker's batch with a run that does not track changes: the tracking one's previous
        # run is the second, and the first still flagged its deals first.
        untracked = run(crm_env, "submit", "--tenant-id", tenant, "--threshold-days", "20")
        queued = run(crm_env, "submit", *base, "--period-end", THIRD)
        run(crm_env, "worker", "--exit-when-idle", "--poll-seconds", "0.2")
        assert changes(db, untracked) == {} and at_risk(db, untracked)
        third = changes(db, queued)
        assert {row["previous_run_id"] for row in third.values()} == {UUID(second)}
        assert third[still["deal_id"]]["first_flagged_run_id"] == UUID(first)

        shown = json.loads(run(crm_env, "show", second, "--changes", "--json"))
        assert {c["deal_id"] for c in shown["changes"]} == {str(deal) for deal in rows}
        assert [c["change_type"] for c in shown["changes"]][-1] == "RECOVERED"
        printed = run(crm_env, "show", second, "--changes")
        assert f"Changes (since run {first})" in printed and "WON" in printed

        page = tmp_path / "second.html"
        run(crm_env, "show", second, "--html", str(page))
        assert "Since the previous run" in page.read_text() and "won" in page.read_text()


def test_dbt_run_tracks_changes_only_when_asked(dbt: Dbt, db, ids):
    base = {"tenant_id": ids.tenants[0], "threshold_days": 30, "period_end": FIRST}
    plain = dbt_run(dbt, db, base)
    tracked = dbt_run(dbt, db, base | {"changes": "TRACK", "period_end": SECOND})

    assert plain["input_params"]["changes"] == "ignore" and changes(db, plain["run_id"]) == {}
    assert tracked["input_params"]["changes"] == "track"
    rows = changes(db, tracked["run_id"])
    assert {row["previous_run_id"] for row in rows.values()} == {plain["run_id"]}
    assert of_type(rows, "STILL_AT_RISK") == at_risk(db, plain["run_id"]) & at_risk(
        db, tracked["run_id"]
    )
    assert assert_run_matches_oracle(db, tracked)


def test_an_invocation_without_tracking_runs_leaves_the_change_list_out(
    database_env, dbt, db, ids, report_ready
):
    """It would only add a model's cost; with a run that tracks changes, leaving it out is
    refused before any run is opened."""
    args = ["--tenant-id", ids.tenants[1], "--threshold-days", "30", "--verbose"]
    plain = run_runner(database_env, "run", *args)
    tracked = run_runner(database_env, "run", *args, "--changes", "track")
    assert plain.returncode == tracked.returncode == 0, plain.stderr + tracked.stderr
    built = re.compile(r"START sql incremental model \S*report_deal_aging_change\b")
    assert not built.search(plain.stderr) and built.search(tracked.stderr), tracked.stderr[-2000:]

    before = row_counts(db)
    excluded = ["--exclude", "report_deal_aging_change"]
    refused = dbt.invoke("run", *excluded, dbt_vars={"threshold_days": 30, "changes": "track"})
    assert not refused.success
    assert "select report_deal_aging_change too" in str(refused.exception)
    assert row_counts(db) == before
    assert dbt.invoke("run", *excluded, dbt_vars={"threshold_days": 30}).success


def dbt_run(dbt: Dbt, db: psycopg.Connection, dbt_vars: dict[str, Any]) -> dict[str, Any]:
    result = dbt.run(dbt_vars)
    assert result.success, result.exception
    [done] = runs_of_invocation(db, get_invocation_id())
    assert done["status"] == "SUCCEEDED", done["error_message"]
    return done
