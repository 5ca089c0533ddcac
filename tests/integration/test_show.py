"""`python -m runner show` and `list` as a person's terminal and shell see them: CRM text cannot
drive the terminal, a reader that stops early gets no traceback, and a database error is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from runner.dbt.project import PROJECT_DIR

from .report_checks import DatasetIds
from .runner_process import run_runner, runner_env
from .support import DEAL_TABLE, connect

EVIL_NAME = "\x1b[2J\x1b[Hpwned\tcol\nrow"
# 128 + SIGPIPE: what a shell reports for `cat`, `seq` or `git log` when the reader left early.
CLOSED_PIPE_EXIT = 141


@pytest.fixture(scope="module")
def evil_run(database_env: dict[str, str], ids: DatasetIds, report_ready: None) -> Iterator[str]:
    """A run listing an at-risk deal the CRM has renamed to clear the screen and break the table;
    the deal gets its name back afterwards (the run keeps the name it listed)."""
    tenant = ids.tenants[0]
    with connect(database_env["PGDATABASE"], autocommit=True) as conn:
        deal_id, name = conn.execute(
            f"select d.id, d.name from {DEAL_TABLE} r"
            " join dyno_crm.deal d on d.id = r.deal_id and d.tenant_id = r.tenant_id"
            " where r.tenant_id = %s order by d.id limit 1",
            (tenant,),
        ).fetchone()
        conn.execute("update dyno_crm.deal set name = %s where id = %s", (EVIL_NAME, deal_id))
        try:
            done = run_runner(database_env, "run", "--tenant-id", tenant, "--threshold-days", "30")
            assert done.returncode == 0, done.stderr
            yield done.stdout.splitlines()[-1]
        finally:
            conn.execute("update dyno_crm.deal set name = %s where id = %s", (name, deal_id))


def show(database_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    """The runner's bytes as a terminal gets them: no newline translation on the way."""
    return subprocess.run(
        [sys.executable, "-m", "runner", "show", *args],
        cwd=PROJECT_DIR,
        env=runner_env(database_env),
        capture_output=True,
        timeout=120,
    )


def test_deal_names_cannot_drive_the_terminal(evil_run, database_env, db):
    done = show(database_env, evil_run, "--deals")

    assert done.returncode == 0, done.stderr
    stdout = done.stdout.decode()
    assert "\x1b" not in stdout and "\t" not in stdout and "\r" not in stdout
    deals_table = stdout.rstrip("\n").split("\n\n")[-1].split("\n")
    listed = db.execute(f"select count(*) from {DEAL_TABLE} where run_id = %s", (evil_run,))
    # A header, a rule and one line per deal: the renamed deal did not break its row.
    assert len(deals_table) == 2 + listed.fetchone()[0]
    evil_rows = [line for line in deals_table if "pwned" in line]
    assert len(evil_rows) == 1
    assert evil_rows[0].startswith("\\x1b[2J\\x1b[Hpwned\\tcol\\nrow  ")


def test_json_keeps_the_deal_name_as_the_crm_has_it(evil_run, database_env):
    done = show(database_env, evil_run, "--deals", "--json")

    assert done.returncode == 0, done.stderr
    assert b"\x1b" not in done.stdout
    assert b'"deal_name": "\\u001b[2J\\u001b[Hpwned\\tcol\\nrow"' in done.stdout


def test_a_reader_that_left_early_gets_no_traceback(evil_run, database_env):
    read_end, write_end = os.pipe()
    # Closed before the runner writes a byte, as `show ... | head` looks once head has exited.
    os.close(read_end)
    try:
        shown = subprocess.run(
            [sys.executable, "-m", "runner", "show", evil_run, "--deals"],
            cwd=PROJECT_DIR,
            env=runner_env(database_env),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)

    assert shown.stderr == ""
    assert shown.returncode == CLOSED_PIPE_EXIT


@pytest.mark.parametrize(
    "args", [["list"], ["show", "3fb59f79-ed37-40a6-a19d-9a67e969cd1a"]], ids=["list", "show"]
)
def test_a_database_error_is_one_line(args, database_env, report_ready):
    # A mistyped report schema: the server answers, but there is no report_run in it.
    done = run_runner(database_env, *args, DEAL_AGING_SCHEMA="deal_aging_typo")

    assert done.returncode == 1
    assert done.stderr == (
        'error: database error: relation "deal_aging_typo.report_run" does not exist\n'
    )
    assert done.stdout == ""
