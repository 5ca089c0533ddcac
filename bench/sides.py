"""The two sides of every comparison, as fresh processes: the runner and the baseline.

The runner runs from a project directory (this checkout, or another one given with
--runner-project, to measure a change before it is made) exactly as an orchestrator starts it:
`python -m runner run ...` with the libpq variables of the database under test.

Partial parsing: dbt keeps one partial-parse file per target path, and throws it away whenever
the profile changes. The runner keeps one target path per profile, target and database
(runner/dbt/invocation.py), so each database keeps its own file; the benchmark still primes it
(`prime`: `dbt parse` with the runner's own arguments) and points the runner at it with
DBT_PARTIAL_PARSE_FILE_PATH, which dbt reads and never writes, so no measured run pays a parse.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from bench.databases import server_env
from bench.processes import ChildRun, run_child

BENCH_ROOT = Path(__file__).resolve().parent.parent

# Run in the runner's project directory, so `runner` is that project's; the same arguments as
# the runner's own dbt invocations, with the target path swapped for the benchmark's.
_PRIME = """
import sys
from dbt.cli.main import dbtRunner
from runner.dbt.invocation import DbtSettings
args = DbtSettings().common_args()
args[args.index("--target-path") + 1] = sys.argv[1]
sys.exit(0 if dbtRunner().invoke(["parse", *args]).success else 1)
"""
_OPERATION = """
import json, sys
from dbt.cli.main import dbtRunner
from runner.dbt.invocation import DbtSettings
args = DbtSettings().common_args()
args[args.index("--target-path") + 1] = sys.argv[1]
args[args.index("--log-level") + 1] = "info"
result = dbtRunner().invoke([*sys.argv[2:], *args])
sys.exit(0 if result.success else 1)
"""


@dataclass(frozen=True)
class Sides:
    runner_project: Path
    state_dir: Path  # the benchmark's own dbt files, per database
    python: str = sys.executable

    def env(self, database: str, **extra: str) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PG", "DEAL_AGING_", "DBT_PARTIAL_PARSE", "DBT_LOG"))
        }
        env = keep | server_env() | {"PGDATABASE": database, "DO_NOT_TRACK": "1"}
        partial_parse = self.dbt_target(database) / "partial_parse.msgpack"
        if partial_parse.is_file():  # dbt refuses a path that does not exist
            env["DBT_PARTIAL_PARSE_FILE_PATH"] = str(partial_parse)
        return env | extra

    def dbt_target(self, database: str) -> Path:
        return self.state_dir / database

    def prime(self, database: str) -> ChildRun:
        """Write the database's partial-parse file, as the runner's first run there would."""
        target = self.dbt_target(database)
        (target / "partial_parse.msgpack").unlink(missing_ok=True)
        argv = [self.python, "-c", _PRIME, str(target)]
        return run_child(argv, env=self.env(database), cwd=self.runner_project).check()

    def setup(self, database: str) -> ChildRun:
        """`python -m runner setup`: the report's tables and views, as the owner makes them."""
        argv = [self.python, "-m", "runner", "setup"]
        return run_child(argv, env=self.env(database), cwd=self.runner_project).check()

    def operation(self, database: str, *dbt_args: str) -> ChildRun:
        """A dbt command (run-operation, compile) with the runner's profile and arguments."""
        target = self.dbt_target(database) / "operation"
        argv = [self.python, "-c", _OPERATION, str(target), *dbt_args]
        return run_child(argv, env=self.env(database), cwd=self.runner_project).check()

    def runner(
        self,
        database: str,
        tenant: UUID | None,
        *options: str,
        threshold_days: int = 30,
        **env: str,
    ) -> ChildRun:
        scope = ["--tenant-id", str(tenant)] if tenant else ["--all-tenants"]
        days = ["--threshold-days", str(threshold_days)]
        argv = [self.python, "-m", "runner", "run", *scope, *days, "--json"]
        return run_child(
            [*argv, *options], env=self.env(database, **env), cwd=self.runner_project
        ).check()

    def baseline(self, database: str, tenant: UUID | None) -> ChildRun:
        scope = ["--tenant-id", str(tenant)] if tenant else ["--all-tenants"]
        argv = [self.python, "-m", "bench.baseline", *scope, "--threshold-days", "30"]
        return run_child(argv, env=self.env(database), cwd=BENCH_ROOT).check()

    def python_import(self, module: str) -> ChildRun:
        """`python -c "import module"` in the runner's project: the cost of importing it."""
        argv = [self.python, "-c", f"import {module}" if module else "pass"]
        return run_child(argv, env=self.env("postgres"), cwd=self.runner_project).check()
