"""report_run is shared with other reports: created only when missing, completed only with the
columns this project needs, never dropped or rewritten."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .support import Dbt, connect, create_database, drop_database

OTHER_REPORTS_HEADER = """
    create schema dyno_crm;
    create table dyno_crm.report_run (
        run_id uuid primary key,
        tenant_id uuid not null,
        report_type varchar(64) not null,
        generated_at timestamptz not null,
        period_start timestamptz,
        period_end timestamptz,
        input_params jsonb,
        status varchar(20) not null
    );
    insert into dyno_crm.report_run values (
        '7d0c1c9e-2f4e-4b7e-9a51-000000000001', '7d0c1c9e-2f4e-4b7e-9a51-0000000000aa',
        'pipeline_velocity', '2026-01-01T00:00:00Z', null, null, '{"weeks": 4}', 'SUCCEEDED'
    );
"""


@pytest.fixture
def other_database(dbt: Dbt) -> Iterator[str]:
    name = create_database("deal_aging_report_run")
    saved = os.environ["PGDATABASE"]
    os.environ["PGDATABASE"] = name
    try:
        yield name
    finally:
        os.environ["PGDATABASE"] = saved
        drop_database(name)


def columns(dbname: str) -> dict[str, str]:
    with connect(dbname) as conn:
        return dict(
            conn.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = 'dyno_crm' and table_name = 'report_run'"
            ).fetchall()
        )


def test_created_when_missing(dbt: Dbt, other_database: str):
    result = dbt.invoke("run-operation", "deal_aging_ensure_report_run")

    assert result.success, result.exception
    assert columns(other_database) == {
        "run_id": "uuid",
        "tenant_id": "uuid",
        "report_type": "character varying",
        "generated_at": "timestamp with time zone",
        "period_start": "timestamp with time zone",
        "period_end": "timestamp with time zone",
        "input_params": "jsonb",
        "status": "character varying",
        "finished_at": "timestamp with time zone",
        "error_message": "text",
        "dbt_invocation_id": "uuid",
        "attempts": "integer",
        "executor": "character varying",
    }
    with connect(other_database) as conn, pytest.raises(Exception, match="ck_report_run_status"):
        conn.execute(
            "insert into dyno_crm.report_run (run_id, tenant_id, report_type, generated_at, status)"
            " values (gen_random_uuid(), gen_random_uuid(), 'deal_aging', now(), 'DONE')"
        )


def test_another_reports_table_gains_only_the_missing_columns(dbt: Dbt, other_database: str):
    with connect(other_database) as conn:
        conn.execute(OTHER_REPORTS_HEADER)
        table_oid = conn.execute("select 'dyno_crm.report_run'::regclass::oid").fetchone()[0]

    for _ in range(2):  # a second time finds nothing to do
        assert dbt.invoke("run-operation", "deal_aging_ensure_report_run").success

    assert {"finished_at", "error_message", "dbt_invocation_id", "attempts", "executor"} <= set(
        columns(other_database)
    )
    with connect(other_database) as conn:
        assert (
            conn.execute("select 'dyno_crm.report_run'::regclass::oid").fetchone()[0] == table_oid
        )
        assert conn.execute(
            "select report_type, input_params, status from dyno_crm.report_run"
        ).fetchall() == [("pipeline_velocity", {"weeks": 4}, "SUCCEEDED")]


def test_an_earlier_status_check_is_widened_to_queued(dbt: Dbt, other_database: str):
    with connect(other_database) as conn:
        conn.execute(OTHER_REPORTS_HEADER)
        conn.execute(
            "alter table dyno_crm.report_run add constraint ck_report_run_status"
            " check (status in ('IN_PROGRESS', 'SUCCEEDED', 'FAILED'))"
        )

    assert dbt.invoke("run-operation", "deal_aging_ensure_report_run").success

    with connect(other_database) as conn:
        conn.execute(
            "insert into dyno_crm.report_run (run_id, tenant_id, report_type, generated_at, status)"
            " values (gen_random_uuid(), gen_random_uuid(), 'deal_aging', now(), 'QUEUED')"
        )
        with pytest.raises(Exception, match="ck_report_run_status"):
            conn.execute(
                "insert into dyno_crm.report_run (run_id, tenant_id, report_type, generated_at,"
                " status) values (gen_random_uuid(), gen_random_uuid(), 'deal_aging', now(), 'DONE')"
            )
