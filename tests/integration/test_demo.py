"""`python -m demo`: a report in one command, on an embedded PostgreSQL when no server
answers, else on the server that does, in a database of the demo's own."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from runner.dbt.project import PROJECT_DIR

from .runner_process import runner_env
from .support import connect, drop_database

TENANTS = 3
# The New Business pipeline's open stages in display order, as crm_data.generator makes them.
NEW_BUSINESS_STAGES = ("Qualification", "Discovery", "Proposal", "Negotiation")


def run_demo(libpq: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "demo", "--deals", "2000", *args],
        cwd=PROJECT_DIR,
        env=runner_env(libpq),
        capture_output=True,
        text=True,
        timeout=120,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def processes_using(data_dir: Path) -> list[psutil.Process]:
    return [
        process
        for process in psutil.process_iter(["cmdline"])
        if str(data_dir) in " ".join(process.info["cmdline"] or [])
    ]


def assert_prints_the_reports(stdout: str) -> list[str]:
    """Every tenant's report, stages in pipeline order; returns the run_ids it names."""
    run_ids = [line.split()[1] for line in stdout.splitlines() if line.startswith("run ")]
    assert len(run_ids) == TENANTS, stdout
    assert all(f"run {run_id}  SUCCEEDED" in stdout for run_id in run_ids)
    assert stdout.count("\ntotal ") == TENANTS, stdout
    first_report = stdout[: stdout.index(f"run {run_ids[1]}")]
    positions = [first_report.index(f"New Business  {stage}") for stage in NEW_BUSINESS_STAGES]
    assert positions == sorted(positions), first_report
    return run_ids


def test_without_a_server_the_demo_runs_on_an_embedded_one_and_stops_it(tmp_path):
    port = free_port()
    data_dir = tmp_path / "demo-postgres"
    libpq = {"PGHOST": "127.0.0.1", "PGPORT": str(port)}

    demo = run_demo(libpq, "--data-dir", str(data_dir))

    assert demo.returncode == 0, demo.stderr
    assert f"no PostgreSQL answers at 127.0.0.1:{port}" in demo.stderr
    assert f"using the embedded PostgreSQL in {data_dir}, database deal_aging_demo" in demo.stderr
    run_ids = assert_prints_the_reports(demo.stdout)
    assert f"python -m demo --show {run_ids[0]} --data-dir {data_dir}" in demo.stdout
    assert_stopped(data_dir, port)

    # The hint it prints works: the data stayed, the server starts again and stops again.
    show = subprocess.run(
        [sys.executable, "-m", "demo", "--show", run_ids[0], "--data-dir", str(data_dir)],
        cwd=PROJECT_DIR,
        env=runner_env(libpq),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert show.returncode == 0, show.stderr
    assert f"run {run_ids[0]}  SUCCEEDED" in show.stdout and "\ntotal " in show.stdout
    assert_stopped(data_dir, port)


def assert_stopped(data_dir: Path, port: int) -> None:
    assert processes_using(data_dir) == []
    assert not (data_dir / "postmaster.pid").exists()
    assert port_is_free(port)


@pytest.fixture
def demo_database(database_env: dict[str, str]):
    name = f"deal_aging_demo_test_{uuid.uuid4().hex[:12]}"
    yield name
    drop_database(name)


def test_with_a_server_the_demo_uses_it_in_a_database_of_its_own(
    database_env, demo_database, tmp_path
):
    data_dir = tmp_path / "never-used"
    server = f"{database_env['PGHOST']}:{database_env['PGPORT']}"

    first = run_demo(database_env, "--database", demo_database, "--data-dir", str(data_dir))
    # A second demo replaces the CRM data and adds runs to the history.
    second = run_demo(database_env, "--database", demo_database, "--seed", "2")

    for demo in (first, second):
        assert demo.returncode == 0, demo.stderr
        assert f"using the PostgreSQL at {server}, database {demo_database}" in demo.stderr
        assert_prints_the_reports(demo.stdout)
        assert f"PGDATABASE={demo_database} python -m runner show" in demo.stdout
    assert not data_dir.exists()
    with connect(demo_database) as conn:
        statuses = conn.execute("select status, count(*) from dyno_crm.report_run group by 1")
        assert statuses.fetchall() == [("SUCCEEDED", 2 * TENANTS)]
