"""dbt's injection of ephemeral models, without re-parsing the SQL, for the runner's own dbt.

dbt (1.11) puts a model's ephemeral parents into its SQL by parsing that SQL with sqlparse to find
its WITH keyword, once per model that refers to an ephemeral one. For the report's models that is
more than half of the CPU time of a warm worker's run (measured with yappi: most of a small
tenant's run). Every model here that refers to an ephemeral one starts with WITH, and for such SQL
the result is plain text: the CTEs go after that keyword and the whitespace after it, followed by
", ". Anything else
(no leading WITH, WITH RECURSIVE) goes to dbt's own function, unchanged.
tests/integration/test_cte_injection.py checks that both give the same SQL for every model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

# Whitespace and comments, then WITH (not WITH RECURSIVE, where dbt inserts after RECURSIVE) and
# the whitespace after it: dbt inserts before the first token that is not whitespace.
_LEADING_WITH = re.compile(
    r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*with\b(?!\s+recursive\b)\s*",
    re.IGNORECASE | re.DOTALL,
)

Injector = Callable[[str, Sequence[Any]], str]


def inject_ctes(sql: str, ctes: Sequence[Any], fallback: Injector) -> str:
    """What dbt's inject_ctes_into_sql returns; `fallback` is that function."""
    if not ctes:
        return sql
    leading_with = _LEADING_WITH.match(sql)
    if leading_with is None:
        return fallback(sql, ctes)
    end = leading_with.end()
    return sql[:end] + ", ".join(cte.sql for cte in ctes) + ", " + sql[end:]


def install() -> None:
    """Route dbt's compiler through inject_ctes; idempotent."""
    from dbt import compilation

    current = compilation.inject_ctes_into_sql
    if getattr(current, "deal_aging_fallback", None) is not None:
        return

    def injector(sql: str, ctes: Sequence[Any]) -> str:
        return inject_ctes(sql, ctes, current)

    injector.deal_aging_fallback = current  # type: ignore[attr-defined]
    compilation.inject_ctes_into_sql = injector
