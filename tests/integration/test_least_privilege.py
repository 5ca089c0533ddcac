"""Least privilege: each role of the README's "Roles and grants" does its work with exactly the
grants listed there, in a database whose PUBLIC has lost its default CONNECT and TEMPORARY."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psycopg
import pytest
from psycopg import sql

from runner.dbt.project import EXAMPLE_PROFILES, PROJECT_DIR
from runner.domain.runs import RUN_KEYED_TABLES

from .report_checks import DatasetIds
from .runner_process import block_deals, blocked_on_lock, run_runner, runner_env, wait_until
from .support import OPTIONAL_TABLES, connect

DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")
CRM_TABLES = ("pipeline", "pipeline_stage", "deal", "deal_pipeline_stage_state")
VIEWS = ("report_deal_aging_latest", "report_deal_aging_trend", "report_deal_aging_change_counts")
# Every view the project builds: the dashboards' and the limits learned from history.
ALL_VIEWS = (*VIEWS, "report_deal_aging_stage_limits")


class Grant(NamedTuple):
    why: str
    statement: str


def _crm_reader(role: str, sources_why: str = "the report's sources") -> tuple[Grant, ...]:
    """What every role that computes runs needs to reach the database and read the CRM."""
    tables = ", ".join(f':"crm_schema".{table}' for table in CRM_TABLES)
    return (
        Grant(
            "connect; the run-keyed models write their rows through a temporary view",
            f'grant connect, temporary on database :"database" to :"{role}";',
        ),
        Grant("reach the CRM's tables", f'grant usage on schema :"crm_schema" to :"{role}";'),
        Grant(sources_why, f'grant select on {tables} to :"{role}";'),
    )


def _report_writer(role: str, header_privileges: str, header_why: str) -> tuple[Grant, ...]:
    """What every role that computes runs needs on the report's own tables."""
    run_keyed = ", ".join(f':"report_schema".{table}' for table in RUN_KEYED_TABLES)
    optional = ", ".join(f':"report_schema".{table}' for table in OPTIONAL_TABLES)
    return (
        Grant("reach the report's tables", f'grant usage on schema :"report_schema" to :"{role}";'),
        Grant(
            header_why,
            f'grant {header_privileges} on :"report_schema".report_run to :"{role}";',
        ),
        Grant(
            "a run replaces its own rows: it deletes them, then inserts the new ones",
            f'grant select, insert, delete on {run_keyed} to :"{role}";',
        ),
        Grant(
            "every run first checks that the report's setup is up to date",
            f'grant select on :"report_schema".deal_aging_migration to :"{role}";',
        ),
        Grant(
            "the optional per-stage limits, snoozed deals, working calendars and holidays (only"
            " once the tables exist)",
            f'grant select on {optional} to :"{role}";',
        ),
    )


# The README's "Roles and grants", role by role: (title, grants). Statements name the database,
# schemas and roles as psql variables, so the README's block runs as it is with `psql -v`.
GRANTS: dict[str, tuple[str, tuple[Grant, ...]]] = {
    "owner": (
        "the owner: `python -m runner setup` (or `dbt run-operation deal_aging_setup` and a first"
        " `dbt run`) creates report_run, the report tables and the views, and upgrades them",
        (
            *_crm_reader(
                "owner",
                "the report's sources; the views read the pipeline and stage names with its rights",
            ),
            Grant(
                "create report_run, its trigger function, the run-keyed tables and the views",
                'grant usage, create on schema :"report_schema" to :"owner";',
            ),
        ),
    ),
    "analyst": (
        "the analysts: `dbt run`",
        (
            *_crm_reader("analyst"),
            *_report_writer(
                "analyst", "select, insert, update", "open the runs' headers and close them"
            ),
        ),
    ),
    "runner": (
        "the runner: `python -m runner run`, `sweep` and `prune`",
        (
            *_crm_reader("runner"),
            *_report_writer(
                "runner",
                "select, insert, update, delete",
                "open and close the runs' headers; prune deletes old ones",
            ),
            Grant(
                "sweep reads other roles' queries to tell a dead dbt invocation from a live one",
                'grant pg_read_all_stats to :"runner";',
            ),
            Grant(
                "suggest-limits reads the limits learned from history, and --write sets them",
                'grant select on :"report_schema".report_deal_aging_stage_limits to :"runner";\n'
                'grant insert, update on :"report_schema".deal_aging_stage_threshold to :"runner";',
            ),
        ),
    ),
    "worker": (
        "the workers: `python -m runner worker`, and `submit`",
        (
            *_crm_reader("worker"),
            *_report_writer(
                "worker",
                "select, insert, update",
                "submit queues requests; a worker claims them and closes them",
            ),
            Grant(
                "their sweep also takes back a request that `dbt run --vars '{run_id: …}'`"
                " recomputes: it reads other roles' queries to see whether that dbt is alive",
                'grant pg_read_all_stats to :"worker";',
            ),
        ),
    ),
    "dashboard": (
        "a dashboard: the views, which read the rest with their owner's rights",
        (
            Grant("connect", 'grant connect on database :"database" to :"dashboard";'),
            Grant("reach the views", 'grant usage on schema :"report_schema" to :"dashboard";'),
            Grant(
                "the latest run, the trend and the changes since the previous runs",
                "grant select on "
                + ", ".join(f':"report_schema".{view}' for view in VIEWS)
                + ' to :"dashboard";',
            ),
        ),
    ),
}
README = PROJECT_DIR / "docs" / "operations.md"


def readme_block() -> str:
    """The grants as the README lists them: a title per role, a why per statement."""
    blocks = []
    for letter, (title, grants) in zip("abcde", GRANTS.values(), strict=True):
        lines = [f"-- ({letter}) {title}"]
        for grant in grants:
            lines += [f"--   {grant.why}", grant.statement]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def test_the_readme_lists_exactly_these_grants():
    if readme_block() not in README.read_text():
        pytest.fail(
            "README.md's 'Roles and grants' lists other grants than GRANTS in this file:"
            " make them the same (readme_block() prints the README's block)"
        )


@dataclass(frozen=True)
class Roles:
    """The roles of one module, their report schema, and how to run things as each."""

    names: dict[str, str]
    password: str
    report_schema: str
    database_env: dict[str, str]
    scratch: Path

    @property
    def dbname(self) -> str:
        return self.database_env["PGDATABASE"]

    def env(self, role: str) -> dict[str, str]:
        return {
            "PGUSER": self.names[role],
            "PGPASSWORD": self.password,
            "DEAL_AGING_SCHEMA": self.report_schema,
        }

    def connect(self, role: str) -> psycopg.Connection:
        return psycopg.connect(
            host=self.database_env["PGHOST"],
            port=self.database_env["PGPORT"],
            dbname=self.dbname,
            user=self.names[role],
            password=self.password,
            autocommit=True,
        )

    def table(self, name: str) -> sql.Composed:
        return sql.Identifier(self.report_schema, name)


def _apply_grants(admin: psycopg.Connection, roles: Roles, role: str) -> None:
    names = roles.names | {
        "database": roles.dbname,
        "crm_schema": "dyno_crm",
        "report_schema": roles.report_schema,
    }
    for grant in GRANTS[role][1]:
        statement = re.sub(
            r':"(\w+)"',
            lambda match: sql.Identifier(names[match[1]]).as_string(admin),
            grant.statement,
        )
        admin.execute(statement)


@pytest.fixture(scope="module")
def roles(
    database_env: dict[str, str], dataset, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Roles]:
    """Login roles of their own (roles are cluster-wide), none a superuser, and a report schema
    that exists before the owner's first run, as the CRM's schema does. The CRM's tables are
    loaded first (`dataset`): the grants name them."""
    suffix = uuid.uuid4().hex[:12]
    scratch = tmp_path_factory.mktemp("least_privilege")
    shutil.copyfile(EXAMPLE_PROFILES, scratch / "profiles.yml")
    made = Roles(
        names={role: f"deal_aging_{role}_{suffix}" for role in GRANTS},
        password=uuid.uuid4().hex,
        report_schema=f"deal_aging_lp_{suffix}",
        database_env=database_env,
        scratch=scratch,
    )
    database = sql.Identifier(made.dbname)
    with connect(made.dbname, autocommit=True) as admin:
        try:
            for name in made.names.values():
                admin.execute(
                    sql.SQL(
                        "create role {} login nosuperuser nocreatedb nocreaterole password {}"
                    ).format(sql.Identifier(name), sql.Literal(made.password))
                )
            # Only the listed grants count: PUBLIC may connect and create temporary objects in
            # a new database.
            admin.execute(
                sql.SQL("revoke connect, temporary on database {} from public").format(database)
            )
            admin.execute(sql.SQL("create schema {}").format(sql.Identifier(made.report_schema)))
            _apply_grants(admin, made, "owner")
            yield made
        finally:
            admin.execute(
                sql.SQL("grant connect, temporary on database {} to public").format(database)
            )
            admin.execute(
                sql.SQL("drop schema if exists {} cascade").format(
                    sql.Identifier(made.report_schema)
                )
            )
            for name in made.names.values():
                exists = admin.execute("select 1 from pg_roles where rolname = %s", (name,))
                if exists.fetchone():
                    admin.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
                    admin.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def _dbt_command(roles: Roles, role: str, *args: str) -> dict:
    """The dbt CLI as an analyst's shell runs it, logged in as the role."""
    scratch = roles.scratch / role
    return {
        "args": [
            str(DBT_EXECUTABLE),
            *args,
            "--project-dir",
            str(PROJECT_DIR),
            "--profiles-dir",
            str(roles.scratch),
            "--target-path",
            str(scratch / "target"),
            "--log-path",
            str(scratch / "logs"),
        ],
        "cwd": PROJECT_DIR,
        "env": runner_env(roles.database_env, **roles.env(role)),
        "text": True,
    }


def dbt_as(roles: Roles, role: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(**_dbt_command(roles, role, *args), capture_output=True, timeout=300)


def runner_as(roles: Roles, role: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_runner(roles.database_env, *args, **roles.env(role))


@pytest.fixture(scope="module")
def deployed(roles: Roles) -> Roles:
    """The owner's setup and first `dbt run` build the report in its schema and creates the optional
    tables; the other roles get their grants on what it built."""
    setup = dbt_as(roles, "owner", "run-operation", "deal_aging_setup")
    assert setup.returncode == 0, setup.stdout
    first = dbt_as(roles, "owner", "run", "--vars", "{threshold_days: 30}")
    assert first.returncode == 0, first.stdout
    table = dbt_as(roles, "owner", "run-operation", "deal_aging_create_optional_tables")
    assert table.returncode == 0, table.stdout
    with connect(roles.dbname, autocommit=True) as admin:
        for role in GRANTS.keys() - {"owner"}:
            _apply_grants(admin, roles, role)
    return roles


def run_ids(db: psycopg.Connection, roles: Roles) -> set[uuid.UUID]:
    return {
        run_id
        for (run_id,) in db.execute(
            sql.SQL("select run_id from {}").format(roles.table("report_run"))
        )
    }


def statuses(db: psycopg.Connection, roles: Roles, ids: set[uuid.UUID]) -> dict[str, str]:
    rows = db.execute(
        sql.SQL("select tenant_id::text, status from {} where run_id = any(%s)").format(
            roles.table("report_run")
        ),
        (list(ids),),
    )
    return dict(rows.fetchall())


def fact_count(db: psycopg.Connection, roles: Roles, run_id: str | uuid.UUID) -> int:
    return db.execute(
        sql.SQL("select count(*) from {} where run_id = %s").format(
            roles.table("report_deal_aging_fact")
        ),
        (run_id,),
    ).fetchone()[0]


def test_the_analysts_plain_dbt_run_succeeds_and_rebuilds_no_view(
    deployed: Roles, db: psycopg.Connection, ids: DatasetIds
):
    before = run_ids(db, deployed)
    done = dbt_as(deployed, "analyst", "run", "--vars", "{threshold_days: 30}")
    assert done.returncode == 0, done.stdout
    opened = run_ids(db, deployed) - before
    assert statuses(db, deployed, opened) == dict.fromkeys(ids.tenants, "SUCCEEDED")
    assert all(fact_count(db, deployed, run_id) > 0 for run_id in opened)
    # Replacing a view needs its owner: the analyst's build found every one current.
    assert done.stdout.count("view unchanged") == len(ALL_VIEWS), done.stdout
    owners = db.execute(
        "select relname, pg_get_userbyid(relowner) from pg_class"
        " where relnamespace = %s::regnamespace and relname = any(%s)",
        (deployed.report_schema, list(VIEWS)),
    )
    assert dict(owners.fetchall()) == dict.fromkeys(VIEWS, deployed.names["owner"])


def test_a_changed_view_tells_other_roles_who_may_rebuild_it(
    deployed: Roles, db: psycopg.Connection
):
    trend = deployed.table("report_deal_aging_trend")
    digest = db.execute(
        sql.SQL("select obj_description({}::regclass)").format(sql.Literal(trend.as_string(db)))
    )
    built = digest.fetchone()[0]
    assert built.startswith("deal_aging:"), built
    db.execute(sql.SQL("comment on view {} is 'deal_aging:an older definition'").format(trend))
    try:
        done = dbt_as(
            deployed,
            "analyst",
            "run",
            "--select",
            "report_deal_aging_trend",
            "--vars",
            "{threshold_days: 30}",
        )
    finally:
        db.execute(sql.SQL("comment on view {} is {}").format(trend, sql.Literal(built)))
    assert done.returncode == 1, done.stdout
    owner = deployed.names["owner"]
    assert (
        f"{deployed.report_schema}.report_deal_aging_trend: its definition changed since it was"
        f" built, and only its owner, {owner}, may replace it."
        f" Run `dbt run --select report_deal_aging_trend` as {owner}"
    ) in done.stdout


def test_the_owner_runs_the_report_again(deployed: Roles, db: psycopg.Connection, ids: DatasetIds):
    before = run_ids(db, deployed)
    done = dbt_as(deployed, "owner", "run", "--vars", "{threshold_days: 30}")
    assert done.returncode == 0, done.stdout
    opened = run_ids(db, deployed) - before
    assert statuses(db, deployed, opened) == dict.fromkeys(ids.tenants, "SUCCEEDED")


def test_the_runner_runs_a_tenant(deployed: Roles, db: psycopg.Connection, ids: DatasetIds):
    # Tracking changes, so the run also reads and writes the change list with these grants.
    done = runner_as(
        deployed,
        "runner",
        "run",
        "--tenant-id",
        ids.tenants[0],
        "--threshold-days",
        "30",
        "--changes",
        "track",
    )
    assert done.returncode == 0, done.stderr
    run_id = uuid.UUID(done.stdout.splitlines()[-1])
    assert statuses(db, deployed, {run_id}) == {ids.tenants[0]: "SUCCEEDED"}
    assert fact_count(db, deployed, run_id) > 0


def test_a_worker_executes_a_submitted_run(deployed: Roles, db: psycopg.Connection, ids):
    queued = runner_as(
        deployed,
        "worker",
        "submit",
        "--tenant-id",
        ids.tenants[1],
        "--threshold-days",
        "30",
        "--changes",
        "track",
    )
    assert queued.returncode == 0, queued.stderr
    run_id = uuid.UUID(queued.stdout.strip())
    worked = runner_as(deployed, "worker", "worker", "--exit-when-idle", "--poll-seconds", "0.2")
    assert worked.returncode == 0, worked.stderr
    assert statuses(db, deployed, {run_id}) == {ids.tenants[1]: "SUCCEEDED"}, worked.stderr
    assert fact_count(db, deployed, run_id) > 0


def _connections_of(db: psycopg.Connection, role_name: str) -> int:
    return db.execute(
        "select count(*) from pg_stat_activity where usename = %s", (role_name,)
    ).fetchone()[0]


def test_the_runner_sweeps_a_dead_dbt_invocations_run_only_with_pg_read_all_stats(
    deployed: Roles, db: psycopg.Connection, ids: DatasetIds
):
    """`db`, a connection of another role, stays open throughout: to a role without
    pg_read_all_stats its query reads '<insufficient privilege>', and might be the invocation's."""
    before = run_ids(db, deployed)
    blocker = block_deals(deployed.dbname)
    try:
        analyst = subprocess.Popen(
            **_dbt_command(deployed, "analyst", "run", "--vars", "{threshold_days: 30}"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: blocked_on_lock(db), timeout=120, what="the analyst's run to block")
        finally:
            analyst.kill()
            analyst.wait()
        # Its connections die with it, as they would when the machine it ran on is lost.
        analyst_name = deployed.names["analyst"]
        db.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where usename = %s",
            (analyst_name,),
        )
        wait_until(
            lambda: _connections_of(db, analyst_name) == 0, what="the analyst's connections to end"
        )
    finally:
        blocker.close()
    opened = run_ids(db, deployed) - before
    assert statuses(db, deployed, opened) == dict.fromkeys(ids.tenants, "IN_PROGRESS")

    runner = sql.Identifier(deployed.names["runner"])
    db.execute(sql.SQL("revoke pg_read_all_stats from {}").format(runner))
    try:
        blind = runner_as(deployed, "runner", "sweep", "--older-than", "0")
    finally:
        db.execute(sql.SQL("grant pg_read_all_stats to {}").format(runner))
    assert blind.returncode == 0, blind.stderr
    assert statuses(db, deployed, opened) == dict.fromkeys(ids.tenants, "IN_PROGRESS"), blind.stderr

    swept = runner_as(deployed, "runner", "sweep", "--older-than", "0")
    assert swept.returncode == 0, swept.stderr
    assert statuses(db, deployed, opened) == dict.fromkeys(ids.tenants, "FAILED"), swept.stderr


def test_the_runner_prunes_old_runs(deployed: Roles, db: psycopg.Connection, ids: DatasetIds):
    run_id = uuid.uuid4()
    db.execute(
        sql.SQL(
            "insert into {} (run_id, tenant_id, report_type, generated_at, input_params, status,"
            " finished_at) values (%s, %s, 'deal_aging', now() - interval '30 days', '{{}}',"
            " 'FAILED', now() - interval '30 days')"
        ).format(deployed.table("report_run")),
        (run_id, ids.tenants[2]),
    )
    done = runner_as(deployed, "runner", "prune", "--older-than-days", "20")
    assert done.returncode == 0, done.stderr
    assert str(run_id) in done.stdout.split()
    assert run_id not in run_ids(db, deployed)


def test_a_dashboard_reads_the_views_and_nothing_else(deployed: Roles):
    with deployed.connect("dashboard") as dashboard:
        for view in VIEWS:
            rows = dashboard.execute(
                sql.SQL("select count(*) from {}").format(deployed.table(view))
            )
            assert rows.fetchone()[0] > 0, view
        # The CRM's names come through the view, with its owner's rights.
        nameless = dashboard.execute(
            sql.SQL("select count(*) from {} where pipeline_name is null").format(
                deployed.table("report_deal_aging_latest")
            )
        )
        assert nameless.fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            dashboard.execute(sql.SQL("select 1 from {}").format(deployed.table("report_run")))
