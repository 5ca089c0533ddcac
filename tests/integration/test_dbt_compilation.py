"""The runner's changes to dbt's compiler (runner/dbt/patches.py): the same SQL as dbt's own
injection of ephemeral models apart from inlined staging models, a plan that reads the stage rows
inline, and each node compiled once however many threads run."""

from __future__ import annotations

from collections import Counter

from dbt import compilation
from dbt.cli.main import dbtRunner
from dbt.contracts.graph.nodes import InjectedCTE

from runner.dbt import patches

from .support import Dbt

CTES = [
    InjectedCTE(id="model.p.a", sql=" __dbt__cte__a as (\nselect 1 as x\n)"),
    InjectedCTE(id="model.p.b", sql=" __dbt__cte__b as (\nselect * from __dbt__cte__a\n)"),
]
# Whatever the runner may have installed, dbt's own function.
DBT_INJECT = getattr(
    compilation.inject_ctes_into_sql, "deal_aging_fallback", compilation.inject_ctes_into_sql
)


def _fallbacks(sql: str) -> bool:
    """Whether the runner's injection hands `sql` to dbt, and gives dbt's SQL either way."""
    handed_over = []

    def fallback(text, ctes):
        handed_over.append(text)
        return DBT_INJECT(text, ctes)

    assert patches.inject_ctes(sql, CTES, fallback) == DBT_INJECT(sql, CTES)
    return bool(handed_over)


def test_sql_starting_with_with_is_spliced_as_dbt_does():
    for sql in [
        "with\n\nfinal as (\n    select 1\n)\n\nselect * from final",
        "\n\n  WITH final as (select 1) select * from final",
        "-- a comment\nwith final as (select 1) select * from final",
        "/* a\nblock */ with final as (select 1) select * from final",
        "with -- why\nfinal as (select 1) select * from final",
    ]:
        assert not _fallbacks(sql), sql


def test_anything_else_goes_to_dbt():
    for sql in [
        "select * from __dbt__cte__a",
        "with recursive r as (select 1) select * from r",
        "with_x as (select 1)",
        "select 1 as x -- with",
    ]:
        assert _fallbacks(sql), sql


def test_every_model_of_the_project_gets_dbt_s_sql(dbt: Dbt, report_ready):
    """Compiles the report's models, then injects each node's CTEs both ways."""
    parsed = dbtRunner().invoke(["parse", *dbt.project_args, "--quiet"])
    assert parsed.success, parsed.exception
    manifest = parsed.result
    compiled = dbtRunner(manifest=manifest).invoke(
        ["compile", "--select", "tag:report_run", *dbt.project_args, "--quiet"]
    )
    assert compiled.success, compiled.exception
    checked = []
    for node in manifest.nodes.values():
        pre_injected = getattr(node, "_pre_injected_sql", None)
        if pre_injected and node.extra_ctes:
            spliced = patches.inject_ctes(pre_injected, node.extra_ctes, _no_fallback)
            expected = DBT_INJECT(pre_injected, node.extra_ctes)
            for cte in node.extra_ctes:
                if cte.id.split(".")[-1].startswith("stg_"):
                    marked = cte.sql.replace(" as (", " as not materialized (", 1)
                    expected = expected.replace(cte.sql, marked, 1)
            assert spliced == expected, node.name
            checked.append(node.name)
    assert set(checked) >= {
        "int_deal_aging_params",
        "int_deal_aging_as_of",
        "int_deal_aging_current_deals",
        "report_deal_aging_fact",
        "report_deal_aging_deal",
    }


def _no_fallback(sql, ctes):
    raise AssertionError(f"the project's model went to dbt's injection: {sql[:80]!r}")


def test_two_threads_compile_the_shared_parents_once(dbt: Dbt, report_ready, monkeypatch):
    patches.install()
    compiled = Counter()
    compile_code = compilation.Compiler._compile_code

    def counting(self, node, *args, **kwargs):
        compiled[node.name] += 1
        return compile_code(self, node, *args, **kwargs)

    monkeypatch.setattr(compilation.Compiler, "_compile_code", counting)
    result = dbtRunner().invoke(
        ["compile", "--select", "tag:report_run", "--threads", "4", *dbt.project_args, "--quiet"]
    )
    assert result.success, result.exception
    assert compiled["int_deal_aging_current_deals"] == 1
    assert compiled["report_deal_aging_fact"] == compiled["report_deal_aging_deal"] == 1
    assert set(compiled.values()) == {1}, compiled


def test_the_deal_list_reads_the_stage_rows_inline(dbt: Dbt, report_ready, db):
    """The deal list refers to the stage rows twice (the current visit and the earlier ones):
    materialized, that CTE would hold every tenant's stage rows before any filter."""
    patches.install()
    parsed = dbtRunner().invoke(["parse", *dbt.project_args, "--quiet"])
    assert parsed.success, parsed.exception
    manifest = parsed.result
    compiled = dbtRunner(manifest=manifest).invoke(
        ["compile", "--select", "report_deal_aging_deal", *dbt.project_args, "--quiet"]
    )
    assert compiled.success, compiled.exception
    (node,) = [n for n in manifest.nodes.values() if n.name == "report_deal_aging_deal"]
    assert node.compiled_code.count("__dbt__cte__stg_dyno_crm__deal_stage_states") >= 3
    plan = db.execute(f"explain (format json) {node.compiled_code}").fetchone()[0]
    materialized = _materialized_ctes(plan[0]["Plan"])
    assert not [name for name in materialized if name.startswith("__dbt__cte__stg_")], materialized


def _materialized_ctes(plan: dict) -> set[str]:
    """The CTEs a plan computes once and scans: each has a CTE Scan node."""
    own = {plan["CTE Name"]} if plan["Node Type"] == "CTE Scan" else set()
    return own.union(*(_materialized_ctes(child) for child in plan.get("Plans", [])))
