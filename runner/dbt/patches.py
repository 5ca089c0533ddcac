"""Every change the runner makes to dbt's internals, in one place. Each was written for dbt-core
1.11 (SUPPORTED_DBT); on any other version none is applied and a warning says so, since a private
function or field may have changed meaning. tests/integration/test_dbt_compilation.py and
test_dbt_invocation.py check them.

Ephemeral models without re-parsing. dbt puts a model's ephemeral parents into its SQL by parsing
that SQL with sqlparse, which is slow. Every model here that refers to an ephemeral one starts
with WITH, and for such SQL the result is plain text: the CTEs go after that keyword and the
whitespace after it, followed by ", ". Anything else (no leading WITH, WITH RECURSIVE) goes to
dbt's own function, unchanged (docs/decisions/cte-injection.md). A staging model's CTE is written
NOT MATERIALIZED: PostgreSQL materializes a CTE referred to twice, whole and before any filter,
while a staging model is a projection of one table that costs nothing to inline
(docs/decisions/inlined-staging.md).

A behavior flag's source without reading source files. dbt-common (1.x) names the module that
made each flag by walking inspect.stack(), which reads the source of every frame, for every flag
of every new adapter, and dbt makes one per invocation: a fifth of a warm worker's time outside
SQL. The frames' module names give the same answer (docs/decisions/behavior-flags.md).

Jinja compiled once per text. dbt gives every invocation new Jinja environments and compiles
each model's and hook's text anew, while a warm worker renders the same texts for every batch:
a seventh of a lone request's dbt time. The environment's classes compile a text to the same
Python code whatever the instance (the code reads the instance's undefined type and filters when
it runs), so the code is kept per class and text (docs/decisions/jinja-compiled-once.md).

Events built only when heard. dbt builds a protobuf message for every event it fires, twice (the
event, then its envelope), with logging off too: a tenth of a warm worker's lone request. An event
now builds its message when something reads it, and an event fired while no logger or callback
can hear it (logging off, the usage-tracking callback with tracking off, no warn-error handling
asked for) is dropped unread (docs/decisions/events-built-when-heard.md).

Installed plugins found once. dbt looks for plugin modules (`dbt_*`) by listing every directory
on sys.path at every invocation; the packages installed do not change while a process runs.

One compilation at a time. The report's two models run on two threads and share their ephemeral
parents, which both threads would otherwise compile. Compiling is Python work that the GIL
serializes anyway, so taking turns costs nothing; the models' SQL still runs in parallel
(docs/decisions/one-compilation-at-a-time.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import cache
from types import CodeType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

log = logging.getLogger(__name__)

# The dbt-core minor version the patches below were written and tested for.
SUPPORTED_DBT = (1, 11)

# Whitespace and comments, then WITH (not WITH RECURSIVE, where dbt inserts after RECURSIVE) and
# the whitespace after it: dbt inserts before the first token that is not whitespace.
_LEADING_WITH = re.compile(
    r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*with\b(?!\s+recursive\b)\s*",
    re.IGNORECASE | re.DOTALL,
)

# Distinct Jinja texts whose compiled code a process keeps: the project has about 140.
COMPILED_TEXTS_KEPT = 1024

# A staging model as dbt injects it, ` __dbt__cte__stg_<name> as (`: a projection of one table.
_STAGING_CTE = re.compile(r"\A(\s*__dbt__cte__stg_\w+\s+as\s+)\(")

Injector = Callable[[str, list[Any]], str]


def inject_ctes(sql: str, ctes: list[Any], fallback: Injector) -> str:
    """What dbt's inject_ctes_into_sql returns; `fallback` is that function."""
    if not ctes:
        return sql
    leading_with = _LEADING_WITH.match(sql)
    if leading_with is None:
        return fallback(sql, ctes)
    end = leading_with.end()
    return sql[:end] + ", ".join(_inlined(cte.sql) for cte in ctes) + ", " + sql[end:]


def _inlined(cte_sql: str) -> str:
    """A staging model's CTE marked NOT MATERIALIZED; any other CTE as dbt wrote it."""
    return _STAGING_CTE.sub(r"\1not materialized (", cte_sql, count=1)


@cache
def applicable() -> bool:
    """True on the dbt version the patches were written for; warns once otherwise."""
    from dbt.version import __version__

    found = tuple(int(part) for part in __version__.split(".")[:2])
    if found != SUPPORTED_DBT:
        log.warning(
            "dbt-core %s: the runner's changes to dbt internals are written for %s.x and stay off",
            __version__,
            ".".join(map(str, SUPPORTED_DBT)),
        )
    return found == SUPPORTED_DBT


def install() -> None:
    """Make every change this module describes to the running dbt; idempotent."""
    if not applicable():
        return
    from dbt import compilation

    current = compilation.inject_ctes_into_sql
    if getattr(current, "deal_aging_fallback", None) is not None:
        return

    def injector(sql: str, ctes: list[Any]) -> str:
        return inject_ctes(sql, ctes, current)

    injector.deal_aging_fallback = current  # type: ignore[attr-defined]
    compilation.inject_ctes_into_sql = injector

    compile_node = compilation.Compiler.compile_node
    one_at_a_time = threading.RLock()

    def compile_node_alone(self: Any, *args: Any, **kwargs: Any) -> Any:
        with one_at_a_time:
            return compile_node(self, *args, **kwargs)

    compilation.Compiler.compile_node = compile_node_alone  # type: ignore[method-assign]

    from dbt_common import behavior_flags

    behavior_flags.BehaviorFlagRendered._default_source = staticmethod(  # type: ignore[method-assign]
        flag_source
    )

    from dbt_common.clients.jinja import MacroFuzzEnvironment

    MacroFuzzEnvironment.compile = compiled_once(MacroFuzzEnvironment.compile)  # type: ignore[method-assign]

    _build_events_when_heard()

    from dbt.plugins.manager import PluginManager

    found_once = cache(PluginManager.get_prefixed_modules)
    PluginManager.get_prefixed_modules = classmethod(lambda cls: dict(found_once()))  # type: ignore[method-assign,assignment]


def _build_events_when_heard() -> None:
    from dbt_common.events.base_types import BaseEvent
    from dbt_common.events.event_manager import EventManager

    build = BaseEvent.__init__
    read = BaseEvent.__getattr__

    def defer(self: Any, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "_deal_aging_arguments", (args, kwargs))

    def read_built(self: Any, key: str) -> Any:
        arguments = self.__dict__.pop("_deal_aging_arguments", None)
        if arguments is not None:
            build(self, *arguments[0], **arguments[1])
        return read(self, key)

    BaseEvent.__init__ = defer  # type: ignore[method-assign]
    BaseEvent.__getattr__ = read_built  # type: ignore[method-assign]

    fire = EventManager.fire_event

    def fire_if_heard(
        self: Any,
        e: Any,
        level: Any = None,
        node: Any = None,
        force_warn_or_error_handling: bool = False,
    ) -> None:
        if heard(self, force_warn_or_error_handling):
            fire(self, e, level, node, force_warn_or_error_handling)

    EventManager.fire_event = fire_if_heard  # type: ignore[method-assign]


def heard(manager: Any, force_warn_or_error_handling: bool) -> bool:
    """Whether an event fired to `manager` reaches a logger, a callback that does something with
    it, or the warn-error handling that can turn it into an error."""
    from dbt import tracking

    def listens(callback: Any) -> bool:
        tracked = tracking.active_user is not None and not tracking.active_user.do_not_track
        return callback is not tracking.track_behavior_change_warn or tracked

    return bool(
        manager.loggers
        or any(listens(callback) for callback in manager.callbacks)
        or force_warn_or_error_handling
        or manager.require_warn_or_error_handling
        or os.environ.get("DBT_TEST_BINARY_SERIALIZATION")
    )


def compiled_once(compile_source: Callable[..., Any]) -> Callable[..., Any]:
    """jinja2's Environment.compile, remembering the code of the COMPILED_TEXTS_KEPT texts used
    last per environment class; parsed templates and raw (Python text) output are not kept."""
    kept: OrderedDict[tuple[Any, ...], CodeType] = OrderedDict()
    lock = threading.Lock()

    def compile_once(
        self: Any,
        source: Any,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        if raw or not isinstance(source, str):
            return compile_source(self, source, name, filename, raw, defer_init)
        key = (type(self), source, name, filename, defer_init)
        with lock:
            code = kept.get(key)
            if code is not None:
                kept.move_to_end(key)
                return code
        code = compile_source(self, source, name, filename, raw, defer_init)
        with lock:
            kept[key] = code
            while len(kept) > COMPILED_TEXTS_KEPT:
                kept.popitem(last=False)
        return code

    return compile_once


def flag_source() -> str:
    """The module that made a behavior flag: the first caller outside dbt_common.behavior_flags,
    as dbt-common's _default_source finds it, without inspect.stack()."""
    from dbt_common import behavior_flags

    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if module and module != behavior_flags.__name__:
            return str(module)
        frame = frame.f_back  # type: ignore[assignment]
    return "Unknown"


def forget_compilation(manifest: Manifest) -> None:
    """dbt records compilation in the manifest's nodes: an ephemeral model compiled once keeps its
    SQL, with the invocation id of the run that compiled it, and a later run would compute the
    wrong runs. Every invocation on a reused manifest starts from uncompiled nodes
    (docs/decisions/reused-manifest.md). Needed on every version: it raises on one whose nodes
    lack these fields."""
    node: Any
    for node in manifest.nodes.values():
        if getattr(node, "compiled", False):
            node.compiled = False
            node.compiled_code = None
            node.extra_ctes_injected = False
            node.extra_ctes = []
            node._pre_injected_sql = None


@contextlib.contextmanager
def default_behavior_flags_kept() -> Iterator[None]:
    """dbt-adapters (1.24) gives each new adapter its behavior flags by extending the module's list
    of default flags in place, and every invocation makes a new adapter. In a process that invokes
    dbt again and again the list, and the cost of making an adapter, grows with every run. Every
    invocation leaves the list as it found it (docs/decisions/behavior-flags.md)."""
    if not applicable():
        yield
        return
    from dbt.adapters.base import impl

    defaults = impl.DEFAULT_BASE_BEHAVIOR_FLAGS
    as_found = list(defaults)
    try:
        yield
    finally:
        defaults[:] = as_found
