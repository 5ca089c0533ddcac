"""The runner's changes to dbt internals (runner/dbt/patches.py), without a database."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from runner.dbt import patches

CTES = [SimpleNamespace(sql="__dbt__cte__a as (select 1)"), SimpleNamespace(sql="b as (select 2)")]


def _no_fallback(sql: str, ctes: list[object]) -> str:
    raise AssertionError("dbt's own injection was not expected")


def _fallback(sql: str, ctes: list[object]) -> str:
    return "fallback"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "with x as (select 1) select * from x",
            "with __dbt__cte__a as (select 1), b as (select 2), x as (select 1) select * from x",
        ),
        (
            "  -- a comment\nWITH\n  x as (select 1) select 1",
            "  -- a comment\nWITH\n  __dbt__cte__a as (select 1), b as (select 2), x as (select 1) select 1",
        ),
        (
            "/* c */ with x as (select 1) select 1",
            "/* c */ with __dbt__cte__a as (select 1), b as (select 2), x as (select 1) select 1",
        ),
    ],
)
def test_ctes_go_after_a_leading_with(sql: str, expected: str) -> None:
    assert patches.inject_ctes(sql, CTES, _no_fallback) == expected


def test_a_staging_model_is_inlined_wherever_it_is_referred_to() -> None:
    ctes = [
        SimpleNamespace(sql=" __dbt__cte__stg_crm__deals as (\nselect 1\n)"),
        SimpleNamespace(sql=" __dbt__cte__int_current as (\nselect 2 as stg_x\n)"),
    ]
    assert patches.inject_ctes("with x as (select 1) select 1", ctes, _no_fallback) == (
        "with  __dbt__cte__stg_crm__deals as not materialized (\nselect 1\n),"
        "  __dbt__cte__int_current as (\nselect 2 as stg_x\n), x as (select 1) select 1"
    )


@pytest.mark.parametrize("sql", ["select 1", "with recursive r as (select 1) select 1", "withx"])
def test_anything_else_goes_to_dbt(sql: str) -> None:
    assert patches.inject_ctes(sql, CTES, _fallback) == "fallback"


def test_no_ctes_leaves_the_sql_alone() -> None:
    assert patches.inject_ctes("select 1", [], _no_fallback) == "select 1"


def test_another_dbt_version_switches_the_patches_off_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    patches.applicable.cache_clear()
    monkeypatch.setattr(patches, "SUPPORTED_DBT", (0, 1))
    try:
        with caplog.at_level(logging.WARNING):
            assert patches.applicable() is False
        assert "stay off" in caplog.text
    finally:
        patches.applicable.cache_clear()


def _flags_made_here() -> list[str]:
    from dbt_common.behavior_flags import Behavior

    flags = [{"name": name, "default": False, "description": "d"} for name in ("a", "b")]
    return [flag._behavior_change_event.flag_source for flag in Behavior(flags, {})._flags]  # type: ignore[arg-type]


def test_a_behavior_flags_source_is_its_callers_module_without_reading_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import inspect

    def no_stack(*args: object) -> None:
        raise AssertionError("inspect.stack() reads the source of every frame")

    patches.install()
    monkeypatch.setattr(inspect, "stack", no_stack)
    assert _flags_made_here() == [__name__, __name__]
