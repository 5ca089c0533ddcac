"""`python -m runner`: report runs for orchestrators, and no failure loses or corrupts data."""

from __future__ import annotations

import json
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from .report_checks import assert_run_matches_oracle, fact_rows, header
from .runner_process import block_deals, blocked_on_lock, run_runner, start_runner, wait_until
from .support import FACT_TABLE, REPORT_RUN_TABLE, row_counts

PERIOD_END = "2026-10-15T00:00:00Z"


def succeeded_run(database_env, *args: str) -> str:
    done = run_runner(database_env, "run", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def test_run_prints_its_run_id_and_matches_the_reference(database_env, db, ids, report_ready):
    done = run_runner(
        database_env,
        "run",
        "--tenant-id",
        ids.tenants[0],
        "--threshold-days",
        "30",
        "--cycle-threshold-days",
        "200",
    )

    assert done.returncode == 0, done.stderr
    run_id = done.stdout.splitlines()[-1]
    assert str(uuid.UUID(run_id)) == run_id
    run = header(db, run_id)
    assert run["status"] == "SUCCEEDED" and run["finished_at"] >= run["generated_at"]
    assert run["generated_at"].utcoffset().total_seconds() == 0
    assert assert_run_matches_oracle(db, run)
    assert done.stderr == ""  # quiet by default


def test_json_output(database_env, db, ids, report_ready):
    done = run_runner(
        database_env,
        "run",
        "--tenant-id",
        ids.tenants[1],
        "--threshold-days",
        "14",
        "--period-end",
        PERIOD_END,
        "--json",
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "SUCCEEDED"
    assert result["tenant_id"] == ids.tenants[1]
    assert result["parameters"]["threshold_days"] == 14
    assert result["parameters"]["period_end"] == "2026-10-15T00:00:00+00:00"
    assert result["fact_rows"] == len(fact_rows(db, result["run_id"])) > 0
    assert set(result["timings"]) >= {"dbt_s", "total_s"}


def test_verbose_shows_progress_and_dbt_log_on_stderr(database_env, ids, report_ready):
    done = run_runner(
        database_env, "run", "--tenant-id", ids.tenants[2], "--threshold-days", "3", "--verbose"
    )
    assert done.returncode == 0, done.stderr
    assert "IN_PROGRESS" in done.stderr and "report_deal_aging_fact" in done.stderr
    assert len(done.stdout.splitlines()) == 1


BAD_INPUT = {
    "tenant not a uuid": (["--tenant-id", "acme", "--threshold-days", "3"], "--tenant-id"),
    "negative threshold": (["--threshold-days", "-3"], "--threshold-days"),
    "fractional threshold": (["--threshold-days", "2.5"], "--threshold-days"),
    "cycle threshold": (
        ["--threshold-days", "3", "--cycle-threshold-days", "x"],
        "--cycle-threshold-days",
    ),
    "period start": (["--threshold-days", "3", "--period-start", "yesterday"], "--period-start"),
    "period end": (["--threshold-days", "3", "--period-end", "2026-02-30"], "--period-end"),
    "period order": (
        [
            "--threshold-days",
            "3",
            "--period-start",
            "2026-05-01",
            "--period-end",
            "2026-04-01T00:00Z",
        ],
        "must be before",
    ),
    "pipeline": (["--threshold-days", "3", "--pipeline-id", "1"], "--pipeline-id"),
    "stage": (["--threshold-days", "3", "--stage-id", "'; drop table x; --"], "--stage-id"),
    "principal type": (
        ["--threshold-days", "3", "--principal-type", "TEAM", "--principal-id", str(uuid.uuid4())],
        "--principal-type",
    ),
    "principal type alone": (["--threshold-days", "3", "--principal-type", "USER"], "give both"),
    "principal id alone": (
        ["--threshold-days", "3", "--principal-id", str(uuid.uuid4())],
        "give both",
    ),
    "run id": (["--threshold-days", "3", "--run-id", "nope"], "--run-id"),
    "source schema": (["--threshold-days", "3", "--source-schema", "a;b"], "--source-schema"),
    "breakdown": (["--threshold-days", "3", "--breakdown", "region"], "--breakdown"),
    "breakdown with a principal": (
        [
            "--threshold-days",
            "3",
            "--breakdown",
            "owner",
            "--principal-type",
            "USER",
            "--principal-id",
            str(uuid.uuid4()),
        ],
        "--breakdown owner and --principal-type",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    case, database_env, db, ids, report_ready
):
    args, message = BAD_INPUT[case]
    if "--tenant-id" not in args:
        args = ["--tenant-id", ids.tenants[0], *args]
    before = row_counts(db)

    done = run_runner(database_env, "run", *args)

    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr
    assert row_counts(db) == before


def test_retry_of_another_tenants_run_is_bad_input(database_env, db, ids, report_ready):
    run_id = succeeded_run(database_env, "--tenant-id", ids.tenants[0], "--threshold-days", "30")
    before, facts = row_counts(db), fact_rows(db, run_id)

    done = run_runner(
        database_env,
        "run",
        "--tenant-id",
        ids.tenants[1],
        "--threshold-days",
        "30",
        "--run-id",
        run_id,
    )

    assert done.returncode == 2 and "has no deal_aging run with this id" in done.stderr
    assert ids.tenants[0] not in done.stderr  # whose run it is stays private
    assert row_counts(db) == before and fact_rows(db, run_id) == facts


def test_unreachable_database_exits_1_naming_host_and_port(database_env, ids):
    done = run_runner(
        database_env, "run", "--tenant-id", ids.tenants[0], "--threshold-days", "3", PGPORT="1"
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot connect to PostgreSQL at 127.0.0.1:1")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_missing_source_table_is_bad_input(database_env, db, ids, report_ready):
    before = row_counts(db)
    db.execute("alter table dyno_crm.pipeline_stage rename to pipeline_stage_gone")
    try:
        done = run_runner(database_env, "run", "--all-tenants", "--threshold-days", "3")
    finally:
        db.execute("alter table dyno_crm.pipeline_stage_gone rename to pipeline_stage")

    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "error: --source-schema dyno_crm: no CRM tables (pipeline, pipeline_stage, deal,"
        " deal_pipeline_stage_state) in that schema\n"
    )
    assert row_counts(db) == before


def test_sql_error_fails_the_run_with_one_short_line(database_env, db, ids, report_ready):
    db.execute("alter table dyno_crm.pipeline_stage rename column stage_state to gone")
    try:
        done = run_runner(
            database_env, "run", "--tenant-id", ids.tenants[0], "--threshold-days", "3"
        )
    finally:
        db.execute("alter table dyno_crm.pipeline_stage rename column gone to stage_state")

    assert done.returncode == 1
    run = db.execute(
        f"select run_id, status, error_message from {REPORT_RUN_TABLE}"
        " order by generated_at desc limit 1"
    ).fetchone()
    assert run[1] == "FAILED" and 'column "stage_state" does not exist' in run[2]
    # The database's message once, without dbt's frame, the SQL excerpt or a file path.
    assert run[2].count("does not exist") == 1 and "LINE" not in run[2] and "/" not in run[2]
    assert len(run[2]) < 200, run[2]
    assert fact_rows(db, run[0]) == []
    assert done.stderr.startswith(f"error: run {run[0]} failed:")
    assert len(done.stderr.splitlines()) == 1


def test_dbt_configuration_error_fails_the_run(database_env, db, ids, report_ready):
    done = run_runner(
        database_env,
        "run",
        "--tenant-id",
        ids.tenants[0],
        "--threshold-days",
        "3",
        "--target",
        "no_such_target",
    )

    assert done.returncode == 1
    run_id = done.stderr.split()[2]
    run = header(db, run_id)
    assert run["status"] == "FAILED" and "no_such_target" in run["error_message"]


def _latest_run_id(db: psycopg.Connection) -> str:
    return str(
        db.execute(
            f"select run_id from {REPORT_RUN_TABLE} order by generated_at desc limit 1"
        ).fetchone()[0]
    )


def test_database_connections_killed_mid_run_fail_the_run(database_env, db, ids, report_ready):
    blocker = block_deals(database_env["PGDATABASE"])
    try:
        proc = start_runner(
            database_env, "run", "--tenant-id", ids.tenants[0], "--threshold-days", "3"
        )
        wait_until(lambda: blocked_on_lock(db), what="the run to reach the deal table")
        blocker.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
            " and application_name <> 'pytest-db'"
        )
        _, stderr = proc.communicate(timeout=120)
    finally:
        blocker.close()

    assert proc.returncode == 1, stderr
    run = header(db, _latest_run_id(db))
    assert run["status"] == "FAILED" and run["error_message"]
    assert fact_rows(db, run["run_id"]) == []


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_terminated_runner_marks_its_run_failed(how, database_env, db, ids, report_ready):
    blocker = block_deals(database_env["PGDATABASE"])
    try:
        proc = start_runner(
            database_env, "run", "--tenant-id", ids.tenants[0], "--threshold-days", "3"
        )
        wait_until(lambda: blocked_on_lock(db), what="the run to reach the deal table")
        proc.send_signal(getattr(signal, how))
        _, stderr = proc.communicate(timeout=120)
    finally:
        blocker.close()

    assert proc.returncode == 1, stderr
    run = header(db, _latest_run_id(db))
    expected = "terminated by SIGTERM" if how == "SIGTERM" else "interrupted (Ctrl-C)"
    assert (run["status"], run["error_message"]) == ("FAILED", expected)
    assert fact_rows(db, run["run_id"]) == []


def test_killed_runner_is_swept_and_a_live_one_is_not(database_env, db, ids, report_ready):
    blocker = block_deals(database_env["PGDATABASE"])
    try:
        killed = start_runner(
            database_env, "run", "--tenant-id", ids.tenants[0], "--threshold-days", "3"
        )
        wait_until(lambda: blocked_on_lock(db), what="the first run to block")
        killed_run = _latest_run_id(db)
        killed.kill()
        killed.wait(timeout=30)
        live = start_runner(
            database_env, "run", "--tenant-id", ids.tenants[1], "--threshold-days", "3"
        )
        wait_until(lambda: _latest_run_id(db) != killed_run, what="the second run's header")
        live_run = _latest_run_id(db)
        assert header(db, killed_run)["status"] == "IN_PROGRESS"
        wait_until(
            lambda: (
                db.execute("select count(*) from pg_locks where locktype = 'advisory'").fetchone()[
                    0
                ]
                == 1
            ),
            what="the killed runner's session to end",
        )

        swept = run_runner(database_env, "sweep", "--older-than", "0")

        assert swept.returncode == 0, swept.stderr
        # Other tests' leftover headers may be swept too; these two are what this test is about.
        assert killed_run in swept.stdout.split()
        assert live_run not in swept.stdout.split()
        assert header(db, live_run)["status"] == "IN_PROGRESS"
    finally:
        blocker.close()
    assert live.wait(timeout=120) == 0
    run = header(db, killed_run)
    assert run["status"] == "FAILED" and run["error_message"].startswith("abandoned")
    assert header(db, live_run)["status"] == "SUCCEEDED"


def test_concurrent_runs_each_get_exactly_their_own_facts(database_env, db, ids, report_ready):
    tenants = [ids.tenants[i % 3] for i in range(8)]

    def one(tenant: str) -> str:
        return succeeded_run(
            database_env,
            "--tenant-id",
            tenant,
            "--threshold-days",
            "20",
            "--period-end",
            PERIOD_END,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        run_ids = list(pool.map(one, tenants))
    sequential = {tenant: fact_rows(db, one(tenant)) for tenant in set(tenants)}

    for tenant, run_id in zip(tenants, run_ids, strict=True):
        assert header(db, run_id)["status"] == "SUCCEEDED"
        assert fact_rows(db, run_id) == sequential[tenant]
        assert (
            db.execute(
                f"select count(*) from {FACT_TABLE} where run_id = %s and tenant_id <> %s",
                (run_id, tenant),
            ).fetchone()[0]
            == 0
        )


def test_same_parameters_give_identical_facts_and_a_retry_changes_nothing_else(
    database_env, db, ids, report_ready
):
    args = ["--tenant-id", ids.tenants[0], "--threshold-days", "25", "--period-end", PERIOD_END]
    first, second = succeeded_run(database_env, *args), succeeded_run(database_env, *args)
    assert first != second and fact_rows(db, first) == fact_rows(db, second)
    others = db.execute(
        f"select * from {FACT_TABLE} where run_id <> %s order by run_id, pipeline_id, stage_id",
        (first,),
    ).fetchall()
    generated_before = header(db, first)["generated_at"]

    assert succeeded_run(database_env, *args, "--run-id", first) == first

    assert fact_rows(db, first) == fact_rows(db, second)
    assert header(db, first)["generated_at"] > generated_before
    assert (
        db.execute(
            f"select * from {FACT_TABLE} where run_id <> %s order by run_id, pipeline_id, stage_id",
            (first,),
        ).fetchall()
        == others
    )


def test_corrupt_cross_tenant_row_does_not_leak(database_env, db, ids, report_ready):
    corrupt = db.execute(
        "select s.tenant_id, d.tenant_id from dyno_crm.deal_pipeline_stage_state s"
        " join dyno_crm.deal d on d.id = s.deal_id where s.tenant_id <> d.tenant_id and s.is_current"
    ).fetchall()
    assert corrupt, "the dataset should hold a corrupt cross-tenant stage row"
    for stage_tenant, deal_tenant in corrupt:
        for tenant in {str(stage_tenant), str(deal_tenant)}:
            run_id = succeeded_run(database_env, "--tenant-id", tenant, "--threshold-days", "0")
            counted = db.execute(
                f"select sum(total_deal_count) from {FACT_TABLE} where run_id = %s", (run_id,)
            ).fetchone()[0]
            open_deals = db.execute(
                "select count(*) from dyno_crm.deal_pipeline_stage_state s"
                " join dyno_crm.deal d on d.id = s.deal_id and d.tenant_id = s.tenant_id"
                " join dyno_crm.pipeline_stage p on p.id = s.pipeline_stage_id"
                " and p.tenant_id = s.tenant_id"
                " where s.tenant_id = %s and s.is_current"
                " and p.stage_state not in ('DONE_SUCCESS', 'DONE_FAILED')",
                (tenant,),
            ).fetchone()[0]
            assert counted == open_deals


def test_list_and_show(database_env, db, ids, report_ready):
    run_id = succeeded_run(database_env, "--tenant-id", ids.tenants[0], "--threshold-days", "30")

    listed = run_runner(database_env, "list", "--tenant-id", ids.tenants[0], "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["run_id"] == run_id

    table = run_runner(database_env, "list", "--status", "SUCCEEDED", "--limit", "5")
    assert table.returncode == 0 and run_id in table.stdout and "SUCCEEDED" in table.stdout

    shown = run_runner(database_env, "show", run_id)
    assert shown.returncode == 0, shown.stderr
    stage_names = [
        name
        for (name,) in db.execute(
            f"select distinct s.name from {FACT_TABLE} f join dyno_crm.pipeline_stage s"
            " on s.id = f.stage_id where f.run_id = %s",
            (run_id,),
        )
    ]
    assert stage_names and all(name in shown.stdout for name in stage_names)
    assert "total" in shown.stdout

    as_json = json.loads(run_runner(database_env, "show", run_id, "--json").stdout)
    assert as_json["run"]["status"] == "SUCCEEDED"
    assert len(as_json["facts"]) == len(fact_rows(db, run_id))

    missing = run_runner(database_env, "show", str(uuid.uuid4()))
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1


def test_all_tenants_opens_a_run_per_tenant_in_one_dbt_invocation(
    database_env, db, ids, report_ready
):
    done = run_runner(database_env, "run", "--all-tenants", "--threshold-days", "30", "--json")

    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert sorted(r["tenant_id"] for r in results) == sorted(ids.tenants)
    runs = [header(db, r["run_id"]) for r in results]
    assert len({run["dbt_invocation_id"] for run in runs}) == 1
    for result, run in zip(results, runs, strict=True):
        assert run["status"] == "SUCCEEDED"
        assert len(assert_run_matches_oracle(db, run)) == result["fact_rows"]


def test_all_tenants_with_a_run_id_is_bad_input(database_env, ids):
    done = run_runner(
        database_env, "run", "--all-tenants", "--threshold-days", "3", "--run-id", str(uuid.uuid4())
    )
    assert done.returncode == 2 and "--all-tenants" in done.stderr


@pytest.mark.parametrize("command", ["run", "submit"])
def test_a_schema_without_the_crm_is_bad_input(command, database_env, db, report_ready):
    """Before, `run --all-tenants` died with UndefinedTable and `submit` queued a run that a
    worker then computed from its own schema."""
    before = row_counts(db)
    done = run_runner(
        database_env,
        command,
        "--all-tenants",
        "--threshold-days",
        "30",
        "--source-schema",
        "nosuchschema",
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: --source-schema nosuchschema: no CRM tables (pipeline, pipeline_stage, deal,"
        " deal_pipeline_stage_state) in that schema\n"
    )
    assert row_counts(db) == before


@pytest.mark.parametrize("command", ["run", "submit"])
def test_a_tenant_that_does_not_exist_is_bad_input(command, database_env, db, report_ready):
    before = row_counts(db)
    missing = str(uuid.uuid4())
    done = run_runner(database_env, command, "--tenant-id", missing, "--threshold-days", "30")
    assert done.returncode == 2
    assert (
        done.stderr == f"error: --tenant-id {missing}: no such tenant (no pipeline) in dyno_crm\n"
    )
    assert row_counts(db) == before
