"""Settings of the whole test run."""

from __future__ import annotations

import os

import pytest


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """One worker more than the cores: a third of an integration test's time is spent waiting on
    the runner's subprocesses and on the server, and the extra worker fills it."""
    return (os.cpu_count() or 1) + 1
