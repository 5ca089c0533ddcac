"""Two changes to dbt's compiler, for the runner's own in-process dbt (dbt-core 1.11; a dbt upgrade
must rerun tests/integration/test_dbt_compilation.py, which checks both).

Ephemeral models without re-parsing. dbt puts a model's ephemeral parents into its SQL by parsing
that SQL with sqlparse, which is slow. Every model here that refers to an ephemeral one starts
with WITH, and for such SQL the result is plain text: the CTEs go after that keyword and the
whitespace after it, followed by ", ". Anything else (no leading WITH, WITH RECURSIVE) goes to
dbt's own function, unchanged (docs/decisions/cte-injection.md).

One compilation at a time. The report's two models run on two threads and share their ephemeral
parents, which both threads would otherwise compile. Compiling is Python work that the GIL
serializes anyway, so taking turns costs nothing; the models' SQL still runs in parallel
(docs/decisions/one-compilation-at-a-time.md).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

# Whitespace and comments, then WITH (not WITH RECURSIVE, where dbt inserts after RECURSIVE) and
# the whitespace after it: dbt inserts before the first token that is not whitespace.
_LEADING_WITH = re.compile(
    r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*with\b(?!\s+recursive\b)\s*",
    re.IGNORECASE | re.DOTALL,
)

Injector = Callable[[str, list[Any]], str]


def inject_ctes(sql: str, ctes: list[Any], fallback: Injector) -> str:
    """What dbt's inject_ctes_into_sql returns; `fallback` is that function."""
    if not ctes:
        return sql
    leading_with = _LEADING_WITH.match(sql)
    if leading_with is None:
        return fallback(sql, ctes)
    end = leading_with.end()
    return sql[:end] + ", ".join(cte.sql for cte in ctes) + ", " + sql[end:]


def install() -> None:
    """Route dbt's compiler through inject_ctes and one compilation at a time; idempotent."""
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
