"""crm_data.generator against a real PostgreSQL: determinism, counts, and the planted edge cases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from crm_data.generator import (
    BOUNDARY_DAYS,
    DatasetSpec,
    DatasetSummary,
    create_source_schema,
    load_dataset,
    main,
    tenant_ids,
)

TABLES = ("pipeline", "pipeline_stage", "deal", "deal_pipeline_stage_state")
SPEC = DatasetSpec(deals=400, seed=7, tenants=3)
LIBPQ_ENV = {"dbname": "PGDATABASE", "host": "PGHOST", "port": "PGPORT", "user": "PGUSER"}


def connect_kwargs(dbname: str) -> dict[str, str]:
    """Explicit defaults only where the libpq environment says nothing, so CI can override."""
    kwargs = {"dbname": dbname}
    for var, key, default in (
        ("PGHOST", "host", "127.0.0.1"),
        ("PGPORT", "port", "5432"),
        ("PGUSER", "user", "postgres"),
    ):
        if var not in os.environ:
            kwargs[key] = default
    return kwargs


@pytest.fixture(scope="module")
def dbname() -> Iterator[str]:
    name = f"gen_scratch_demo_data_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**connect_kwargs("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(**connect_kwargs("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def conn(dbname: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(**connect_kwargs(dbname), autocommit=True) as connection:
        connection.execute("SET TIME ZONE 'UTC'")
        yield connection


def load(conn: psycopg.Connection, schema: str, spec: DatasetSpec) -> DatasetSummary:
    create_source_schema(conn, schema)
    return load_dataset(conn, spec, schema)


@pytest.fixture(scope="module")
def summary(conn: psycopg.Connection) -> DatasetSummary:
    return load(conn, "demo", SPEC)


def table_digests(conn: psycopg.Connection, schema: str) -> dict[str, str]:
    return {
        table: conn.execute(
            f"SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.id)) FROM {schema}.{table} t"
        ).fetchone()[0]
        for table in TABLES
    }


def scalar(conn: psycopg.Connection, query: str, params: dict | None = None) -> object:
    return conn.execute(query, params).fetchone()[0]


def keys_and_indexes(conn: psycopg.Connection, schema: str) -> list[tuple[str, str, str]]:
    return conn.execute(
        """
        SELECT t.relname, con.conname, pg_get_constraintdef(con.oid)
        FROM pg_constraint con
        JOIN pg_class t ON t.oid = con.conrelid
        WHERE t.relnamespace = %(schema)s::text::regnamespace
        UNION ALL
        SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %(schema)s::text
        ORDER BY 1, 2, 3
        """,
        {"schema": schema},
    ).fetchall()


def test_same_spec_gives_identical_tables(
    conn: psycopg.Connection, summary: DatasetSummary
) -> None:
    load(conn, "demo_again", SPEC)
    assert table_digests(conn, "demo_again") == table_digests(conn, "demo")


def test_different_seed_gives_different_tables(
    conn: psycopg.Connection, summary: DatasetSummary
) -> None:
    load(conn, "demo_other_seed", DatasetSpec(deals=SPEC.deals, seed=SPEC.seed + 1))
    other = table_digests(conn, "demo_other_seed")
    same = table_digests(conn, "demo")
    assert all(other[table] != same[table] for table in TABLES)


def test_row_counts_match_summary(conn: psycopg.Connection, summary: DatasetSummary) -> None:
    counts = {t: scalar(conn, f"SELECT count(*) FROM demo.{t}") for t in TABLES}
    assert counts == {
        "pipeline": summary.pipelines,
        "pipeline_stage": summary.pipeline_stages,
        "deal": summary.deals,
        "deal_pipeline_stage_state": summary.deal_stage_states,
    }
    assert summary.deals == SPEC.deals == sum(t.deals for t in summary.tenants)
    assert len(summary.tenants) == SPEC.tenants


def test_tenant_summaries_match_tables(conn: psycopg.Connection, summary: DatasetSummary) -> None:
    for tenant in summary.tenants:
        params = {"tenant": tenant.tenant_id}
        assert tenant.deals == scalar(
            conn, "SELECT count(*) FROM demo.deal WHERE tenant_id = %(tenant)s", params
        )
        assert tenant.open_deals == scalar(
            conn,
            """
            SELECT count(*) FROM demo.deal_pipeline_stage_state s
            JOIN demo.pipeline_stage ps
              ON ps.id = s.pipeline_stage_id AND ps.tenant_id = s.tenant_id
            JOIN demo.deal d ON d.id = s.deal_id AND d.tenant_id = s.tenant_id
            WHERE s.tenant_id = %(tenant)s AND s.is_current
              AND ps.stage_state NOT IN ('DONE_SUCCESS', 'DONE_FAILED')
            """,
            params,
        )
        stages = conn.execute(
            "SELECT id FROM demo.pipeline_stage WHERE tenant_id = %(tenant)s "
            "ORDER BY pipeline_id, display_order",
            params,
        ).fetchall()
        assert sorted(s for (s,) in stages) == sorted(tenant.stage_ids)
        assert {p.name for p in tenant.pipelines} >= {"New Business", "Renewals"}


def test_every_deal_has_exactly_one_current_row(
    conn: psycopg.Connection, summary: DatasetSummary
) -> None:
    assert current_rows_per_deal(conn, "demo") == {1: SPEC.deals}


def test_duplicate_current_rows_on_request(conn: psycopg.Connection) -> None:
    spec = DatasetSpec(deals=300, seed=3, duplicate_current_rows=2)
    load(conn, "demo_duplicates", spec)
    assert current_rows_per_deal(conn, "demo_duplicates") == {1: 298, 2: 2}


def current_rows_per_deal(conn: psycopg.Connection, schema: str) -> dict[int, int]:
    """How many deals have how many current rows of their own tenant."""
    rows = conn.execute(
        f"""
        SELECT current_rows, count(*) FROM (
            SELECT d.id, count(*) FILTER (WHERE s.is_current) AS current_rows
            FROM {schema}.deal d
            LEFT JOIN {schema}.deal_pipeline_stage_state s
              ON s.deal_id = d.id AND s.tenant_id = d.tenant_id
            GROUP BY d.id
        ) per_deal
        GROUP BY current_rows
        """
    ).fetchall()
    return dict(rows)


def test_one_corrupt_cross_tenant_row(conn: psycopg.Connection, summary: DatasetSummary) -> None:
    rows = conn.execute(
        """
        SELECT s.id, s.tenant_id, s.is_current, ps.tenant_id, d.tenant_id
        FROM demo.deal_pipeline_stage_state s
        JOIN demo.pipeline_stage ps ON ps.id = s.pipeline_stage_id
        JOIN demo.deal d ON d.id = s.deal_id
        WHERE s.tenant_id <> d.tenant_id OR s.tenant_id <> ps.tenant_id
        """
    ).fetchall()
    owner = summary.tenants[0].tenant_id
    assert len(rows) == 1
    state_id, state_tenant, is_current, stage_tenant, deal_tenant = rows[0]
    assert state_id == summary.corrupt_state_id
    assert (state_tenant, stage_tenant, is_current) == (owner, owner, True)
    assert deal_tenant in {t.tenant_id for t in summary.tenants[1:]}


def test_null_amounts_in_every_tenant(conn: psycopg.Connection, summary: DatasetSummary) -> None:
    per_tenant = dict(
        conn.execute(
            "SELECT tenant_id, count(*) FROM demo.deal WHERE amount IS NULL GROUP BY tenant_id"
        ).fetchall()
    )
    assert all(per_tenant.get(t.tenant_id, 0) >= 3 for t in summary.tenants)


def test_open_deals_on_whole_day_boundaries(
    conn: psycopg.Connection, summary: DatasetSummary
) -> None:
    rows = conn.execute(
        """
        SELECT s.tenant_id, extract(epoch FROM %(as_of)s - s.entered_at) / 86400
        FROM demo.deal_pipeline_stage_state s
        JOIN demo.pipeline_stage ps ON ps.id = s.pipeline_stage_id
        WHERE s.is_current AND ps.stage_state NOT IN ('DONE_SUCCESS', 'DONE_FAILED')
          AND extract(epoch FROM %(as_of)s - s.entered_at) %% 86400 = 0
        """,
        {"as_of": SPEC.as_of},
    ).fetchall()
    found = {(tenant, int(days)) for tenant, days in rows}
    expected = {(t.tenant_id, days) for t in summary.tenants for days in BOUNDARY_DAYS}
    assert expected <= found


def test_clock_skew_rows_are_current_and_within_two_days(
    conn: psycopg.Connection, summary: DatasetSummary
) -> None:
    rows = conn.execute(
        """
        SELECT tenant_id, is_current, entered_at - %(as_of)s
        FROM demo.deal_pipeline_stage_state WHERE entered_at > %(as_of)s
        """,
        {"as_of": SPEC.as_of},
    ).fetchall()
    assert {tenant for tenant, _, _ in rows} == {t.tenant_id for t in summary.tenants}
    assert all(is_current and skew.days < 2 for _, is_current, skew in rows)


def test_timestamps_carry_sub_second_fractions(
    conn: psycopg.Connection, summary: DatasetSummary
) -> None:
    fractional = scalar(
        conn,
        "SELECT avg((extract(microseconds FROM entered_at) % 1000000 <> 0)::int) "
        "FROM demo.deal_pipeline_stage_state",
    )
    assert fractional > 0.9


def test_history_follows_display_order(conn: psycopg.Connection, summary: DatasetSummary) -> None:
    broken = scalar(
        conn,
        """
        SELECT count(*) FROM (
            SELECT s.is_current, s.exited_at, ps.display_order, s.entered_at,
                   lead(ps.display_order) OVER w AS next_order,
                   lead(s.entered_at) OVER w AS next_entered
            FROM demo.deal_pipeline_stage_state s
            JOIN demo.pipeline_stage ps
              ON ps.id = s.pipeline_stage_id AND ps.tenant_id = s.tenant_id
            JOIN demo.deal d ON d.id = s.deal_id AND d.tenant_id = s.tenant_id
            WINDOW w AS (PARTITION BY s.deal_id ORDER BY s.entered_at)
        ) h
        WHERE (next_entered IS NULL) <> is_current
           OR next_order <= display_order
           OR next_entered <= entered_at
           OR exited_at IS DISTINCT FROM next_entered
        """,
    )
    assert broken == 0


def test_deals_look_realistic(conn: psycopg.Connection) -> None:
    load(conn, "demo_large", DatasetSpec(deals=5000, seed=11, tenants=2))
    closed_share, rows_per_deal, null_share, median_amount = conn.execute(
        """
        SELECT
            avg((ps.stage_state IN ('DONE_SUCCESS', 'DONE_FAILED'))::int)
                FILTER (WHERE s.is_current AND s.tenant_id = d.tenant_id),
            count(*)::numeric / (SELECT count(*) FROM demo_large.deal),
            (SELECT avg((amount IS NULL)::int) FROM demo_large.deal),
            (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) FROM demo_large.deal)
        FROM demo_large.deal_pipeline_stage_state s
        JOIN demo_large.pipeline_stage ps ON ps.id = s.pipeline_stage_id
        JOIN demo_large.deal d ON d.id = s.deal_id
        """
    ).fetchone()
    assert 0.30 <= closed_share <= 0.40
    assert 2.5 <= rows_per_deal <= 3.5
    assert 0.03 <= null_share <= 0.08
    assert 5_000 <= median_amount <= 50_000
    versions = scalar(
        conn, "SELECT array_agg(DISTINCT substr(id::text, 15, 1)) FROM demo_large.deal"
    )
    assert versions == ["4"]


def test_big_tenant_share(conn: psycopg.Connection) -> None:
    summary = load(conn, "demo_big", DatasetSpec(deals=1000, tenants=4, big_tenant_share=0.3))
    assert summary.tenants[0].deals == 300
    assert sum(t.deals for t in summary.tenants) == 1000
    assert len({t.deals for t in summary.tenants[1:]}) > 1


def test_deals_per_tenant_bounds_every_tenant(conn: psycopg.Connection) -> None:
    spec = DatasetSpec(deals=1000, seed=3, tenants=5, deals_per_tenant=(100, 300))
    summary = load(conn, "demo_bounded", spec)
    counts = [t.deals for t in summary.tenants]
    assert sum(counts) == 1000 and all(100 <= n <= 300 for n in counts), counts
    assert len(set(counts)) > 1
    assert tenant_ids(spec) == [t.tenant_id for t in summary.tenants]
    with pytest.raises(ValueError, match="deals_per_tenant"):
        load_dataset(conn, DatasetSpec(deals=2000, tenants=5, deals_per_tenant=(100, 300)))


def test_load_recreates_keys_and_indexes_exactly(conn: psycopg.Connection) -> None:
    create_source_schema(conn, "demo_keys")
    before = keys_and_indexes(conn, "demo_keys")
    load_dataset(conn, DatasetSpec(deals=50), "demo_keys")
    assert keys_and_indexes(conn, "demo_keys") == before
    assert len(before) == 15  # 4 primary keys and their indexes, 4 foreign keys, 3 indexes


def test_loads_inside_a_repeatable_read_transaction(dbname: str) -> None:
    # The loader's COPY FREEZE must work under any isolation level.
    with psycopg.connect(**connect_kwargs(dbname)) as rr:
        rr.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        create_source_schema(rr, "demo_rr")
        summary = load_dataset(rr, DatasetSpec(deals=200, tenants=2), "demo_rr")
        assert scalar(rr, "SELECT count(*) FROM demo_rr.deal") == summary.deals == 200


def test_reload_replaces_rows(conn: psycopg.Connection) -> None:
    load(conn, "demo_reload", DatasetSpec(deals=200, seed=1))
    summary = load_dataset(conn, DatasetSpec(deals=100, seed=2), "demo_reload")
    assert scalar(conn, "SELECT count(*) FROM demo_reload.deal") == summary.deals == 100


def test_schema_name_is_validated(conn: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="schema name"):
        create_source_schema(conn, 'x"; DROP SCHEMA demo; --')
    with pytest.raises(ValueError, match="schema name"):
        load_dataset(conn, SPEC, "Demo")


def test_cli_loads_and_prints_summary(
    dbname: str,
    conn: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in connect_kwargs(dbname).items():
        monkeypatch.setenv(LIBPQ_ENV[key], value)
    assert main(["--deals", "250", "--tenants", "2", "--schema", "demo_cli"]) == 0
    out, err = capsys.readouterr()
    assert "250 deals" in out and out.count("\n") == 1
    assert "tenant 2/2" in err
    assert scalar(conn, "SELECT count(*) FROM demo_cli.deal") == 250


def test_a_healthy_dataset_has_a_quarter_to_a_third_of_open_deals_at_risk(conn) -> None:
    """The demo's data: a team that closes stalled deals, so the report shows red and green."""
    as_of = datetime(2026, 6, 1, tzinfo=UTC)
    load(conn, "demo_healthy", DatasetSpec(deals=20000, seed=1, as_of=as_of, healthy=True))
    shares = conn.execute(
        "select ps.display_order,"
        " avg((%(as_of)s - s.entered_at > interval '30 days')::int)"
        " from demo_healthy.deal_pipeline_stage_state s"
        " join demo_healthy.pipeline_stage ps"
        "   on ps.id = s.pipeline_stage_id and ps.tenant_id = s.tenant_id"
        " where s.is_current and ps.stage_state not in ('DONE_SUCCESS', 'DONE_FAILED')"
        " group by rollup (1) order by 1 nulls last",
        {"as_of": as_of},
    ).fetchall()
    *by_stage, (_, overall) = shares
    assert 0.25 <= overall <= 0.34, shares
    assert by_stage[0][1] < by_stage[-1][1]  # later stages stall more often
