"""Where the dbt project lives and which profiles directory dbt should read."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from runner.domain.vocabulary import PROJECT_DIR

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
