"""Where the dbt project lives and which profiles directory dbt should read."""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXAMPLE_PROFILES = PROJECT_DIR / "profiles.example.yml"


def profiles_dir_args(explicit_dir: str | None) -> list[str]:
    """The `--profiles-dir` arguments for a dbt invocation.

    A directory the user names (the flag, then DBT_PROFILES_DIR, which dbt reads itself) wins.
    Otherwise the project's own profiles.yml, and failing that the example profile, which needs
    nothing but the libpq variables: so the runner works where nobody wrote a profiles.yml.
    """
    if explicit_dir:
        return ["--profiles-dir", explicit_dir]
    if os.environ.get("DBT_PROFILES_DIR"):
        return []
    if (PROJECT_DIR / "profiles.yml").is_file():
        return ["--profiles-dir", str(PROJECT_DIR)]
    directory = Path(tempfile.mkdtemp(prefix="deal-aging-profiles-"))
    shutil.copyfile(EXAMPLE_PROFILES, directory / "profiles.yml")
    return ["--profiles-dir", str(directory)]


@cache
def project_file() -> dict[str, Any]:
    """dbt_project.yml, where the names and defaults both sides share are defined."""
    return yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())


# What dbt writes before every statement of an invocation, up to the invocation's id.
DBT_QUERY_COMMENT_PREFIX = project_file()["query-comment"]["comment"].split("{{")[0]
