"""Fixtures shared by the integration tests: a database of their own on the real server, the
CRM source schema with a generated dataset, and dbt invoked for real."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import psycopg
import pytest

from crm_data.generator import DatasetSpec, DatasetSummary, create_source_schema, load_dataset
from runner.dbt.project import EXAMPLE_PROFILES, PROJECT_DIR

from .report_checks import DatasetIds, dataset_ids
from .runner_process import run_runner
from .support import (
    OPTIONAL_TABLES,
    Dbt,
    connect,
    create_database,
    drop_database,
    report_table_exists,
    server_env,
)


@pytest.fixture(scope="session")
def database_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A database of this test session's own; the process's libpq variables point at it."""
    name = create_database("deal_aging_test")
    saved = dict(os.environ)
    os.environ.update(server_env() | {"PGDATABASE": name, "DO_NOT_TRACK": "1"})
    os.environ.pop("DBT_PROFILES_DIR", None)
    try:
        yield server_env() | {"PGDATABASE": name}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        drop_database(name)


@pytest.fixture(scope="session")
def dataset(database_env: dict[str, str]) -> DatasetSummary:
    with connect(database_env["PGDATABASE"]) as conn:
        create_source_schema(conn)
        summary = load_dataset(conn, DatasetSpec(deals=900, tenants=3, seed=7))
        conn.commit()
    return summary


@pytest.fixture(scope="session")
def dbt(database_env: dict[str, str], dataset: DatasetSummary, tmp_path_factory) -> Dbt:
    scratch = tmp_path_factory.mktemp("dbt")
    # The example profile, not a developer's own profiles.yml: tests run on what ships.
    shutil.copyfile(EXAMPLE_PROFILES, scratch / "profiles.yml")
    project_args = [
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(scratch),
        "--target-path",
        str(scratch / "target"),
        "--log-path",
        str(scratch / "logs"),
    ]
    dbt = Dbt(project_args)
    # The analysts' setup before their first `dbt run`, as the README says.
    setup = dbt.invoke("run-operation", "deal_aging_setup")
    assert setup.success, setup.exception
    return dbt


@pytest.fixture
def db(database_env: dict[str, str]) -> Iterator[psycopg.Connection]:
    # Named, so tests that terminate "every other backend" spare the test's own connection.
    with connect(database_env["PGDATABASE"], autocommit=True, application_name="pytest-db") as conn:
        yield conn


@pytest.fixture(scope="session")
def ids(dataset: DatasetSummary, database_env: dict[str, str]) -> DatasetIds:
    with connect(database_env["PGDATABASE"]) as conn:
        return dataset_ids(conn)


@pytest.fixture(scope="session")
def report_ready(dbt: Dbt, database_env: dict[str, str], ids: DatasetIds) -> None:
    """The report tables exist (deployed once), as before any concurrent use."""
    done = run_runner(database_env, "run", "--tenant-id", ids.tenants[0], "--threshold-days", "30")
    assert done.returncode == 0, done.stderr


@pytest.fixture
def optional_tables(
    database_env: dict[str, str], db: psycopg.Connection, report_ready
) -> Iterator[None]:
    """The optional tables, made by the owner's setup as the README says. Every one this made is
    dropped afterwards, whichever the test used: a later test on this worker's database that
    needs one to be missing finds it missing."""
    existed = {table for table in OPTIONAL_TABLES if report_table_exists(db, table)}
    done = run_runner(database_env, "setup", "--optional-tables")
    assert done.returncode == 0, done.stderr
    assert all(report_table_exists(db, table) for table in OPTIONAL_TABLES)
    yield
    for table in set(OPTIONAL_TABLES) - existed:
        db.execute(f"drop table dyno_crm.{table}")


# The longest tests, started first: at the end they would run alone while the other workers
# idle. xdist (--dist=loadfile --no-loadscope-reorder, pyproject.toml) hands out test files in
# the order they were collected.
LONGEST_FIRST = ("test_bench_smoke.py", "test_demo.py", "test_fresh_database.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)
