"""What a var or a setting can smuggle in: dbt renders Jinja inside a --vars string whenever a
macro calls var(), and quotes schema names into SQL without escaping them. Each test invokes real
dbt or the runner against the real server and checks that nothing ran, leaked or was written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dbt.cli.main import dbtRunnerResult
from dbt_common.invocation import get_invocation_id

from runner.domain.params import AGING_CALENDARS, CHANGES, SNOOZES, THRESHOLD_MODES

from .report_checks import DatasetIds, runs_of_invocation
from .runner_process import run_runner
from .support import REPORT_RUN_TABLE, Dbt, row_counts

VAR_NAMES = (
    "source_schema, tenant_id, threshold_days, cycle_threshold_days, period_start, period_end,"
    " pipeline_id, stage_id, principal_type, principal_id, breakdown, run_id"
)
JINJA_REFUSED = "a value may not contain Jinja ({{, {% or {#)."
YEAR_REFUSED = "expected a timestamp with a year from 1000 to 9998"
EXTREME_BOUNDS = [
    ("period_start", "0001-01-01T00:00:00+14:00"),
    ("period_end", "9999-12-31T23:59:59-14:00"),
]
WIDEST_PERIOD = {
    "period_start": "1000-01-01T00:00:00+14:00",
    "period_end": "9998-12-31T23:59:59-14:00",
}


def failure(result: dbtRunnerResult) -> str:
    """Everything dbt says about a failed invocation."""
    assert not result.success
    return f"{result.exception} {result.result}"


def table_exists(db: psycopg.Connection, table: str) -> bool:
    return db.execute("select to_regclass(%s) is not null", (table,)).fetchone()[0]


def dbt_log(dbt: Dbt) -> Path:
    return Path(dbt.project_args[dbt.project_args.index("--log-path") + 1]) / "dbt.log"


def finished_run(db: psycopg.Connection) -> tuple[Any, ...]:
    row = db.execute(
        f"select run_id, tenant_id, status, finished_at, input_params from {REPORT_RUN_TABLE}"
        " where status = 'SUCCEEDED' order by generated_at desc limit 1"
    ).fetchone()
    assert row is not None
    return row


@pytest.fixture
def canary(db: psycopg.Connection) -> Iterator[str]:
    """A table a payload would drop: still there afterwards, nothing ran."""
    table = f"public.var_safety_canary_{uuid.uuid4().hex[:12]}"
    db.execute(f"create table {table} (x int)")
    yield table
    db.execute(f"drop table if exists {table}")


def query_payload(canary: str) -> str:
    return f"{{% do run_query('delete from {REPORT_RUN_TABLE}; drop table {canary}') %}}"


@pytest.mark.parametrize("name", ["tenant_id", "source_schema", "threshold_days"])
def test_a_query_in_a_var_never_runs(name, dbt, db, ids, report_ready, canary):
    valid = {"tenant_id": ids.tenants[0], "source_schema": "dyno_crm", "threshold_days": 30}
    before = row_counts(db)

    result = dbt.run({"threshold_days": 30, name: query_payload(canary) + str(valid[name])})

    assert f"Invalid var {name}: {JINJA_REFUSED}" in failure(result)
    assert row_counts(db) == before
    assert table_exists(db, canary)


def test_a_query_in_source_schema_never_runs_in_the_index_operation(
    dbt, db, report_ready, canary, capfd
):
    before = row_counts(db)
    capfd.readouterr()

    result = dbt.invoke(
        "run-operation",
        "deal_aging_create_source_indexes",
        "--args",
        "{dry_run: true}",
        dbt_vars={"source_schema": query_payload(canary) + "dyno_crm"},
    )

    # run-operation reports a macro's error on its output only.
    assert not result.success
    assert f"Invalid var source_schema: {JINJA_REFUSED}" in capfd.readouterr().out
    assert row_counts(db) == before
    assert table_exists(db, canary)


def test_a_source_schema_never_breaks_out_of_its_quotes(dbt, db, report_ready, canary):
    # Closes the data test's subquery, drops the canary, commits, and reopens a valid query.
    escape = (
        f'dyno_crm"."pipeline" where false) t; drop table {canary}; commit;'
        ' select 1 from (select 1 as id from "dyno_crm'
    )

    result = dbt.invoke(
        "test",
        "--select",
        "source_not_null_dyno_crm_pipeline_id",
        dbt_vars={"source_schema": escape},
    )

    assert not result.success
    assert table_exists(db, canary)


@pytest.mark.parametrize("name", ["tenant_id", "source_schema"])
def test_an_environment_variable_in_a_var_is_never_printed(
    name, dbt, db, report_ready, monkeypatch, capfd
):
    marker = f"not-a-password-{uuid.uuid4().hex}"
    # Trust authentication ignores the password; only a rendered var could print it.
    monkeypatch.setenv("PGPASSWORD", marker)
    before = row_counts(db)
    capfd.readouterr()

    result = dbt.run({"threshold_days": 30, name: "{{ env_var('PGPASSWORD') }}"})

    out, err = capfd.readouterr()
    monkeypatch.undo()
    text = failure(result)
    for printed in (text, out, err, dbt_log(dbt).read_text()):
        assert marker not in printed
    assert f"Invalid var {name}: {JINJA_REFUSED}" in text
    assert row_counts(db) == before


@pytest.mark.parametrize(
    "case",
    [
        "expression",
        "comment",
        "statement in a list",
        "expression in a mapping",
    ],
)
def test_jinja_in_a_var_is_refused(case, dbt, db, ids, report_ready):
    name, value = {
        "expression": ("threshold_days", "{{ 1+1 }}"),
        "comment": ("tenant_id", "{# the tenant #}" + ids.tenants[0]),
        "statement in a list": ("run_id", ["{% if true %}" + str(uuid.uuid4()) + "{% endif %}"]),
        "expression in a mapping": ("cycle_threshold_days", {"days": "{{ 90 }}"}),
    }[case]
    dbt_vars = {name: value} if name == "run_id" else {"threshold_days": 30, name: value}
    before = row_counts(db)

    result = dbt.run(dbt_vars)

    assert f"Invalid var {name}: {JINJA_REFUSED}" in failure(result)
    assert row_counts(db) == before


@pytest.mark.parametrize("name", ["THRESHOLD_DAYS", "treshold_days"])
def test_an_unknown_var_is_refused(name, dbt, db, report_ready):
    before = row_counts(db)

    result = dbt.run({name: 7})

    assert f"Unknown var {name}: the report's vars are {VAR_NAMES}" in failure(result)
    assert row_counts(db) == before


@pytest.mark.parametrize(
    ("name", "choices"),
    [
        ("snoozes", SNOOZES),
        ("aging_calendar", AGING_CALENDARS),
        ("threshold_mode", THRESHOLD_MODES),
        ("changes", CHANGES),
    ],
)
def test_an_optional_features_unknown_mode_is_refused(
    name, choices, database_env, dbt, db, ids: DatasetIds, report_ready
):
    flag = "--" + name.replace("_", "-")
    expected = " or ".join(choices)
    before = row_counts(db)

    done = run_runner(
        database_env, "run", "--tenant-id", ids.tenants[0], "--threshold-days", "3", flag, "on"
    )
    result = dbt.run({"threshold_days": 3, name: "sometimes"})

    assert (done.returncode, done.stderr) == (2, f"error: {flag}: expected {expected}, got 'on'\n")
    assert f"Invalid var {name}: expected {expected}, got sometimes." in failure(result)
    assert row_counts(db) == before


@pytest.mark.parametrize("name", ["tenant_id", "threshold_days"])
def test_run_id_goes_alone(name, dbt, db, ids: DatasetIds, report_ready):
    run = finished_run(db)
    other = {"tenant_id": ids.tenants[1], "threshold_days": 7}[name]
    before = row_counts(db)

    result = dbt.run({"run_id": str(run[0]), name: other})

    assert (
        f"Invalid vars run_id and {name}: run_id recomputes existing runs with the parameters"
        " recorded in their headers; give run_id alone."
    ) in failure(result)
    assert row_counts(db) == before
    assert finished_run(db) == run


def test_run_id_may_go_with_the_source_schema(dbt, db, report_ready):
    run = finished_run(db)

    result = dbt.run({"run_id": str(run[0]), "source_schema": "dyno_crm"})

    assert result.success, result.exception
    [status] = db.execute(
        f"select status from {REPORT_RUN_TABLE} where run_id = %s", (run[0],)
    ).fetchone()
    assert status == "SUCCEEDED"


def test_runner_refuses_an_unsafe_report_schema(database_env, db, ids, report_ready, canary):
    schema = f'x"; drop table {canary}; --'
    before = row_counts(db)

    done = run_runner(
        database_env,
        "run",
        "--tenant-id",
        ids.tenants[0],
        "--threshold-days",
        "30",
        DEAL_AGING_SCHEMA=schema,
    )

    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: DEAL_AGING_SCHEMA: expected a plain schema name, got {schema!r}"
    ]
    assert row_counts(db) == before
    assert table_exists(db, canary)
    schemas = db.execute("select count(*) from pg_namespace where nspname like 'x\"%'").fetchone()
    assert schemas == (0,)


def test_dbt_refuses_an_unsafe_report_schema_before_it_connects(
    dbt, db, ids, report_ready, canary, monkeypatch
):
    """dbt creates a missing target schema before any hook runs, quoting the name unescaped: the
    example profile refuses such a name while it is read."""
    monkeypatch.setenv("DEAL_AGING_SCHEMA", f'x"; drop table {canary}; --')
    before = row_counts(db)

    result = dbt.run({"threshold_days": 30})

    assert not result.success
    assert "DEAL_AGING_SCHEMA must be a plain schema name" in str(result.exception)
    assert row_counts(db) == before
    assert table_exists(db, canary)
    schemas = db.execute("select count(*) from pg_namespace where nspname like 'x\"%'").fetchone()
    assert schemas == (0,)


@pytest.mark.parametrize(("name", "value"), EXTREME_BOUNDS)
def test_runner_refuses_a_period_bound_outside_the_years_it_can_convert(
    name, value, database_env, db, ids, report_ready
):
    option = "--" + name.replace("_", "-")
    before = row_counts(db)

    done = run_runner(
        database_env,
        "run",
        "--tenant-id",
        ids.tenants[0],
        "--threshold-days",
        "30",
        option,
        value,
    )

    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"error: {option}: {YEAR_REFUSED}, got {value!r}"]
    assert row_counts(db) == before


@pytest.mark.parametrize(("name", "value"), EXTREME_BOUNDS)
def test_dbt_refuses_a_period_bound_outside_the_years_it_can_convert(
    name, value, dbt, db, ids, report_ready
):
    before = row_counts(db)

    result = dbt.run({"tenant_id": ids.tenants[0], "threshold_days": 30, name: value})

    assert f"Invalid var {name}: {YEAR_REFUSED}, got {value}." in failure(result)
    assert row_counts(db) == before


def test_the_widest_period_runs_through_the_runner(database_env, db, ids, report_ready):
    done = run_runner(
        database_env,
        "run",
        "--tenant-id",
        ids.tenants[0],
        "--threshold-days",
        "30",
        "--period-start",
        WIDEST_PERIOD["period_start"],
        "--period-end",
        WIDEST_PERIOD["period_end"],
    )

    assert done.returncode == 0, done.stderr
    run_id = done.stdout.splitlines()[-1]
    [status] = db.execute(
        f"select status from {REPORT_RUN_TABLE} where run_id = %s", (run_id,)
    ).fetchone()
    assert status == "SUCCEEDED"


def test_the_widest_period_runs_through_dbt(dbt, db, ids, report_ready):
    result = dbt.run({"tenant_id": ids.tenants[0], "threshold_days": 30, **WIDEST_PERIOD})

    assert result.success, result.exception
    [run] = runs_of_invocation(db, get_invocation_id())
    assert run["status"] == "SUCCEEDED"
    assert run["period_start"] == datetime.fromisoformat(WIDEST_PERIOD["period_start"])
    assert run["period_end"] == datetime.fromisoformat(WIDEST_PERIOD["period_end"])
