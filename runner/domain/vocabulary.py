"""What the runner and the dbt project share, read from dbt_project.yml: one definition each."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]


@cache
def project_file() -> dict[str, Any]:
    """dbt_project.yml, where the names and defaults both sides share are defined."""
    loaded: dict[str, Any] = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    return loaded


def migration_versions() -> list[int]:
    """The versions of the setup's migrations, in their order (macros/migrations.sql)."""
    text = (PROJECT_DIR / "macros" / "migrations.sql").read_text()
    return [int(version) for version in re.findall(r"'version': (\d+)", text)]


# The CRM's schema when nobody names another: the project's default of the var source_schema.
DEFAULT_SOURCE_SCHEMA: str = project_file()["vars"]["source_schema"]
# What dbt writes before every statement of an invocation, up to the invocation's id.
DBT_QUERY_COMMENT_PREFIX: str = project_file()["query-comment"]["comment"].split("{{")[0]
