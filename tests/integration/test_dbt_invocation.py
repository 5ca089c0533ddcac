"""The runner's in-process dbt (runner/dbt/invocation.py) invoked again and again in one process,
as a warm worker does."""

from __future__ import annotations

import shutil

from dbt.adapters.base import impl

from runner.dbt import invocation
from runner.dbt.invocation import DbtSettings
from runner.dbt.project import EXAMPLE_PROFILES
from runner.domain.timeouts import Timeouts


def test_invocations_leave_dbt_s_default_behavior_flags_as_they_found_them(
    tmp_path, database_env, dataset
):
    shutil.copyfile(EXAMPLE_PROFILES, tmp_path / "profiles.yml")
    settings = DbtSettings(profiles_dir=str(tmp_path))
    defaults = impl.DEFAULT_BASE_BEHAVIOR_FLAGS
    as_found = list(defaults)

    for _ in range(3):
        assert invocation.run_setup(settings, None, Timeouts.defaults()).success

    assert defaults == as_found
