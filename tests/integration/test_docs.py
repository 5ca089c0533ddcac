"""The documentation explains itself: `dbt docs generate` succeeds, every source, model and column
has a description, and so do every macro and each of its arguments, and the lineage runs from the
CRM's tables through staging and the intermediate chain to the report and on to the exposures
that use it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from dbt.parser.schemas import is_valid_type
from dbt_common.clients.jinja import parse as parse_jinja
from jinja2 import nodes

from runner.dbt.project import PROJECT_DIR

from .support import Dbt, connect

PROJECT = "deal_aging"
CRM_SOURCES = {
    f"source.{PROJECT}.dyno_crm.{table}"
    for table in ("pipeline", "pipeline_stage", "deal", "deal_pipeline_stage_state")
}
REPORT_RUN_SOURCE = f"source.{PROJECT}.reporting.report_run"
FACT_NAME = "report_deal_aging_fact"
LATEST_NAME = "report_deal_aging_latest"
FACT = f"model.{PROJECT}.{FACT_NAME}"
LATEST = f"model.{PROJECT}.{LATEST_NAME}"
RUNNER = f"exposure.{PROJECT}.deal_aging_runner"
DASHBOARD = f"exposure.{PROJECT}.at_risk_deals_dashboard"
# A materialization is stored as a macro named materialization_<name>_<adapter>, but macro
# properties cannot document it: the description of deal_aging_view_digest tells of it.
MATERIALIZATION_PREFIX = "materialization_"

# Each node's parents that make the chain (other parents may join it).
CHAIN = {
    f"model.{PROJECT}.stg_dyno_crm__pipelines": {f"source.{PROJECT}.dyno_crm.pipeline"},
    f"model.{PROJECT}.stg_dyno_crm__pipeline_stages": {f"source.{PROJECT}.dyno_crm.pipeline_stage"},
    f"model.{PROJECT}.stg_dyno_crm__deals": {f"source.{PROJECT}.dyno_crm.deal"},
    f"model.{PROJECT}.stg_dyno_crm__deal_stage_states": {
        f"source.{PROJECT}.dyno_crm.deal_pipeline_stage_state"
    },
    f"model.{PROJECT}.stg_reporting__report_runs": {REPORT_RUN_SOURCE},
    f"model.{PROJECT}.int_deal_aging_params": {f"model.{PROJECT}.stg_reporting__report_runs"},
    f"model.{PROJECT}.int_deal_aging_as_of": {f"model.{PROJECT}.int_deal_aging_params"},
    f"model.{PROJECT}.int_deal_aging_current_deals": {
        f"model.{PROJECT}.int_deal_aging_as_of",
        f"model.{PROJECT}.stg_dyno_crm__deals",
        f"model.{PROJECT}.stg_dyno_crm__deal_stage_states",
        f"model.{PROJECT}.stg_dyno_crm__pipeline_stages",
    },
    FACT: {f"model.{PROJECT}.int_deal_aging_current_deals"},
    LATEST: {FACT, f"model.{PROJECT}.stg_reporting__report_runs"},
    RUNNER: {FACT, REPORT_RUN_SOURCE},
    DASHBOARD: {LATEST},
}


@pytest.fixture(scope="module")
def artifacts(dbt: Dbt, database_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """manifest.json and catalog.json of a real `dbt docs generate` on the test database, with
    the report's relations built, so the catalog holds their real columns."""
    built = dbt.invoke(
        "run", "--select", "tag:report_run", LATEST_NAME, dbt_vars={"threshold_days": 30}
    )
    assert built.success, built.exception
    result = dbt.invoke("docs", "generate")
    assert result.success, result.exception
    target = Path(dbt.project_args[dbt.project_args.index("--target-path") + 1])
    assert (target / "index.html").is_file()
    yield {
        name: json.loads((target / f"{name}.json").read_text()) for name in ("manifest", "catalog")
    }
    with connect(database_env["PGDATABASE"], autocommit=True) as conn:
        conn.execute(f"drop view if exists dyno_crm.{LATEST_NAME}")


def own(nodes: dict[str, dict[str, Any]], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        unique_id: node
        for unique_id, node in nodes.items()
        if node["package_name"] == PROJECT and node["resource_type"] == resource_type
    }


def undocumented(nodes: dict[str, dict[str, Any]]) -> list[str]:
    missing = []
    for unique_id, node in nodes.items():
        if not node["description"].strip():
            missing.append(unique_id)
        missing += [
            f"{unique_id}.{name}"
            for name, column in node["columns"].items()
            if not column["description"].strip()
        ]
    return missing


def test_every_source_model_and_column_has_a_description(artifacts):
    manifest = artifacts["manifest"]
    models = own(manifest["nodes"], "model")
    sources = own(manifest["sources"], "source")

    assert undocumented(sources) + undocumented(models) == []
    assert all(source["source_description"].strip() for source in sources.values())
    assert all(model["columns"] for model in models.values()), "models without documented columns"


def test_every_column_the_database_has_is_documented(artifacts):
    """The catalog holds the columns the relations really have: sources, and materialized models."""
    documented = {**artifacts["manifest"]["sources"], **artifacts["manifest"]["nodes"]}
    catalog = {**artifacts["catalog"]["sources"], **artifacts["catalog"]["nodes"]}

    missing = [
        f"{unique_id}.{name}"
        for unique_id, entry in catalog.items()
        for name in entry["columns"]
        if name not in documented[unique_id]["columns"]
    ]
    assert missing == []
    assert CRM_SOURCES | {REPORT_RUN_SOURCE, FACT, LATEST} <= set(catalog)


def test_every_column_an_ephemeral_model_selects_is_documented(artifacts, db):
    """Ephemeral models have no relation in the catalog: their compiled SQL says what they select."""
    ephemeral = {
        unique_id: node
        for unique_id, node in own(artifacts["manifest"]["nodes"], "model").items()
        if node["config"]["materialized"] == "ephemeral"
    }
    assert ephemeral

    missing = []
    for unique_id, node in ephemeral.items():
        selected = _selected_columns(db, node["compiled_code"])
        missing += [f"{unique_id}.{name}" for name in selected if name not in node["columns"]]
    assert missing == []


def test_every_macro_and_each_of_its_arguments_has_a_description(artifacts):
    """macros/_macros.yml documents every macro of the project like a model: what it does, and
    each argument of its signature, with a type dbt accepts; no argument the signature lacks, and
    no macro the project lacks (dbt only warns about those)."""
    macros = {
        unique_id: macro
        for unique_id, macro in own(artifacts["manifest"]["macros"], "macro").items()
        if not macro["name"].startswith(MATERIALIZATION_PREFIX)
    }
    assert macros

    problems = []
    for unique_id, macro in macros.items():
        if not (macro["description"] or "").strip():
            problems.append(f"{unique_id}: no description")
        signature = _macro_signature(macro["macro_sql"])
        documented = {argument["name"]: argument for argument in macro["arguments"]}
        if len(documented) != len(macro["arguments"]):
            problems.append(f"{unique_id}: an argument documented twice")
        problems += [
            f"{unique_id}.{name}: documented, but not in the signature {signature}"
            for name in documented
            if name not in signature
        ]
        for name in signature:
            argument = documented.get(name) or {}
            if not (argument.get("description") or "").strip():
                problems.append(f"{unique_id}.{name}: no description")
            elif not is_valid_type((argument.get("type") or "").strip()):
                problems.append(
                    f"{unique_id}.{name}: no type dbt accepts: {argument.get('type')!r}"
                )
    defined = {macro["name"] for macro in macros.values()}
    problems += [
        f"{name}: documented, but no macro of the project has that name"
        for name in sorted(_documented_macro_names() - defined)
    ]
    assert problems == []


def _macro_signature(macro_sql: str) -> list[str]:
    """The argument names of a macro, as dbt's own Jinja parser reads its definition."""
    definition = next(parse_jinja(macro_sql).find_all(nodes.Macro))
    return [argument.name for argument in definition.args]


def _documented_macro_names() -> set[str]:
    """The macros that the property files among the project's macros document."""
    names: set[str] = set()
    for path in (PROJECT_DIR / "macros").rglob("*.yml"):
        properties = yaml.safe_load(path.read_text()) or {}
        names |= {entry["name"] for entry in properties.get("macros") or []}
    return names


def _selected_columns(db: psycopg.Connection, compiled_sql: str) -> list[str]:
    cursor = db.execute(f"select * from ({compiled_sql}) as model limit 0")
    return [column.name for column in cursor.description]


def test_lineage_runs_from_the_crm_to_the_people_who_use_the_report(artifacts):
    parent_map = artifacts["manifest"]["parent_map"]
    child_map = artifacts["manifest"]["child_map"]

    for node, parents in CHAIN.items():
        assert parents <= set(parent_map[node]), node
    # The mart reads the intermediate chain, never a source or a staging model directly.
    assert parent_map[FACT] == [f"model.{PROJECT}.int_deal_aging_current_deals"]
    assert RUNNER in child_map[FACT]
    assert FACT in _ancestors(parent_map, DASHBOARD)
    for exposure in (RUNNER, DASHBOARD):
        assert CRM_SOURCES | {REPORT_RUN_SOURCE} <= _ancestors(parent_map, exposure), exposure


def test_exposures_say_who_uses_the_report_and_how(artifacts):
    exposures = artifacts["manifest"]["exposures"]

    assert {exposures[RUNNER]["type"], exposures[DASHBOARD]["type"]} == {"application", "dashboard"}
    for exposure in (exposures[RUNNER], exposures[DASHBOARD]):
        assert exposure["description"].strip()
        assert exposure["owner"]["name"] and exposure["owner"]["email"]


def _ancestors(parent_map: dict[str, list[str]], node: str) -> set[str]:
    seen: set[str] = set()
    pending = list(parent_map[node])
    while pending:
        parent = pending.pop()
        if parent not in seen:
            seen.add(parent)
            pending += parent_map.get(parent, [])
    return seen
