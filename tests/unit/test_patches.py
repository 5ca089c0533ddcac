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


class _CountedCompile:
    """jinja2's own Environment.compile, counting the texts it is asked to compile."""

    def __init__(self) -> None:
        import jinja2

        self.texts: list[str] = []
        self._compile = jinja2.Environment.compile

    def __call__(self, env: object, source: object, *args: object) -> object:
        self.texts.append(str(source))
        return self._compile(env, source, *args)  # type: ignore[arg-type]


def test_a_jinja_text_is_compiled_once_per_environment_class_and_renders_its_own_context() -> None:
    from dbt_common.clients.jinja import get_environment

    counted = _CountedCompile()
    compile_once = patches.compiled_once(counted)
    text = "{{ threshold }} days"
    outputs = []
    for threshold in (30, 45):
        env = get_environment()  # a new environment, as every dbt invocation makes
        template = env.template_class.from_code(env, compile_once(env, text), env.globals, None)
        outputs.append(template.render({"threshold": threshold}))
    assert outputs == ["30 days", "45 days"]
    assert counted.texts == [text]

    # The native environment (another class, other filters) compiles the text for itself.
    native = compile_once(get_environment(native=True), text)
    assert native is not compile_once(get_environment(), text)
    assert counted.texts == [text, text]


def test_only_the_texts_used_last_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from dbt_common.clients.jinja import get_environment

    monkeypatch.setattr(patches, "COMPILED_TEXTS_KEPT", 2)
    counted = _CountedCompile()
    compile_once = patches.compiled_once(counted)
    env = get_environment()
    for text in ("a", "b", "a", "c", "a", "b"):
        compile_once(env, text)
    # "b" was the least recently used when "c" came, so it is compiled again; "a" never is.
    assert counted.texts == ["a", "b", "c", "b"]


def test_python_text_and_parsed_templates_are_not_kept() -> None:
    from dbt_common.clients.jinja import get_environment

    counted = _CountedCompile()
    compile_once = patches.compiled_once(counted)
    env = get_environment()
    compile_once(env, "{{ x }}", None, None, True)
    compile_once(env, "{{ x }}", None, None, True)
    parsed = env.parse("{{ y }}")
    compile_once(env, parsed)
    compile_once(env, parsed)
    assert len(counted.texts) == 4


def test_an_event_builds_its_message_only_when_read() -> None:
    from dbt_common.events.types import Note

    patches.install()
    event = Note(msg="a note")
    assert "pb_msg" not in event.__dict__
    assert event.msg == "a note"
    assert event.pb_msg.msg == "a note"


def test_an_event_nobody_hears_is_dropped_unread_and_a_heard_one_is_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dbt import tracking
    from dbt_common.events.event_manager import EventManager
    from dbt_common.events.types import Note

    patches.install()
    manager = EventManager()
    manager.callbacks = [tracking.track_behavior_change_warn]
    monkeypatch.setattr(tracking, "active_user", tracking.User(None))  # tracking off

    unheard = Note(msg="unheard")
    manager.fire_event(unheard)
    assert "pb_msg" not in unheard.__dict__

    monkeypatch.setattr(tracking, "active_user", SimpleNamespace(do_not_track=False))
    assert patches.heard(manager, False)
    monkeypatch.setattr(tracking, "active_user", tracking.User(None))

    delivered: list[object] = []
    manager.callbacks.append(delivered.append)
    manager.fire_event(Note(msg="heard"))
    assert [message.data.msg for message in delivered] == ["heard"]  # type: ignore[attr-defined]


def test_warn_error_handling_still_sees_every_event_it_was_asked_to() -> None:
    from dbt_common.events.event_manager import EventManager
    from dbt_common.events.types import Note
    from dbt_common.exceptions.events import EventCompilationError

    patches.install()
    manager = EventManager()
    manager.warn_error = True
    with pytest.raises(EventCompilationError, match="an error now"):
        manager.fire_event(Note(msg="an error now"), force_warn_or_error_handling=True)


def test_installed_plugins_are_looked_for_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import pkgutil

    from dbt.plugins.manager import PluginManager

    patches.install()
    first = PluginManager.get_prefixed_modules()

    def no_listing(*args: object) -> None:
        raise AssertionError("sys.path was listed again")

    monkeypatch.setattr(pkgutil, "iter_modules", no_listing)
    assert PluginManager.get_prefixed_modules() == first
