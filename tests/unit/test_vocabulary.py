"""The names and rules the dbt macros and the runner share, checked from the files' text."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from psycopg import sql

from runner.dbt.project import PROJECT_DIR
from runner.domain.params import MAX_YEAR, MIN_YEAR, SCHEMA_NAME
from runner.domain.runs import REPORT_TYPE, RUN_KEYED_TABLES, RunStatus
from runner.domain.vocabulary import migration_versions
from runner.store.liveness import liveness_key

REPORT_PARAMS = PROJECT_DIR / "macros" / "report_params.sql"


def macro_body(path: Path, name: str) -> str:
    match = re.search(
        r"{%-?\s*macro\s+" + name + r"\(.*?\)\s*-?%}(.*?){%-?\s*endmacro\s*-?%}",
        path.read_text(),
        re.DOTALL,
    )
    assert match, f"no macro {name} in {path.name}"
    return match.group(1)


def test_the_macro_knows_every_var_of_the_project_and_no_other() -> None:
    names = re.findall(r"'([^']*)'", macro_body(REPORT_PARAMS, "deal_aging_var_names"))
    project_vars = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]

    assert len(names) == len(set(names)), "deal_aging_var_names lists a var twice"
    assert sorted(names) == sorted(project_vars)


def test_no_macro_or_model_reads_a_var_with_var() -> None:
    # dbt's var() renders Jinja inside a --vars value; deal_aging_var returns it as given.
    direct = re.compile(r"(?<![\w.])var\s*\(")
    offenders = []
    for path in sorted(
        [*PROJECT_DIR.glob("macros/**/*.sql"), *PROJECT_DIR.glob("models/**/*.sql")]
    ):
        text = path.read_text()
        if path == REPORT_PARAMS:
            text = text.replace(macro_body(REPORT_PARAMS, "deal_aging_var"), "")
        # Comments may name var() when they say why it is not used.
        text = re.sub(r"{#.*?#}", "", text, flags=re.DOTALL)
        offenders += [path.name for _ in direct.finditer(text)]
    assert offenders == []


def test_the_timestamp_year_bounds_are_the_same_in_jinja_and_python() -> None:
    assert f"{MIN_YEAR} <= year <= {MAX_YEAR}" in macro_body(REPORT_PARAMS, "deal_aging_timestamp")


def test_the_schema_name_rule_is_the_same_in_jinja_and_python() -> None:
    jinja = f"modules.re.fullmatch('{SCHEMA_NAME.pattern}',"
    assert jinja in macro_body(REPORT_PARAMS, "deal_aging_schema_name")
    assert jinja in macro_body(
        PROJECT_DIR / "macros" / "report_run_table.sql", "deal_aging_report_run_relation"
    )


def test_the_liveness_lock_has_one_key_on_both_sides() -> None:
    python_key = liveness_key(sql.SQL("run_id")).as_string(None)
    macro = (PROJECT_DIR / "macros" / "report_run_lifecycle.sql").read_text()
    assert python_key in macro.replace("{{ run_id_sql }}", "run_id")


def test_the_statuses_are_the_same_on_both_sides() -> None:
    macro = macro_body(PROJECT_DIR / "macros" / "report_run_table.sql", "deal_aging_run_statuses")
    assert re.findall(r"'([A-Z_]+)'", macro) == [status.value for status in RunStatus]


def test_the_migrations_are_numbered_in_order() -> None:
    assert migration_versions() == list(range(1, len(migration_versions()) + 1))
    assert migration_versions()


def test_the_report_type_and_the_run_keyed_tables_are_the_same_on_both_sides() -> None:
    lifecycle = PROJECT_DIR / "macros" / "report_run_lifecycle.sql"
    assert re.findall(r"'(\w+)'", macro_body(lifecycle, "deal_aging_report_type")) == [REPORT_TYPE]
    tables = re.findall(r"'(\w+)'", macro_body(lifecycle, "deal_aging_run_keyed_tables"))
    assert tuple(tables) == RUN_KEYED_TABLES
