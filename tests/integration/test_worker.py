"""`python -m runner worker` and `submit`: requests in PostgreSQL, real worker processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from runner.dbt.project import PROJECT_DIR

from .report_checks import fact_rows, header
from .runner_process import block_deals, blocked_on_lock, run_runner, runner_env, wait_until
from .support import REPORT_RUN_TABLE, connect

PERIOD_END = "2026-10-20T00:00:00Z"


class WorkerProcess:
    def __init__(self, database_env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                "worker",
                "--poll-seconds",
                "0.2",
                "--sweep-seconds",
                "0.5",
                *args,
            ],
            cwd=PROJECT_DIR,
            env=runner_env(database_env),
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        wait_until(lambda: "dbt loaded" in self.text(), timeout=120, what="the worker to load dbt")

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


@contextmanager
def workers(
    database_env, tmp_path: Path, count: int = 1, *args: str
) -> Iterator[list[WorkerProcess]]:
    started = [
        WorkerProcess(database_env, tmp_path / f"worker{i}.log", *args) for i in range(count)
    ]
    try:
        yield started
    finally:
        for worker in started:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()


def submit(database_env, *args: str) -> subprocess.CompletedProcess[str]:
    return run_runner(database_env, "submit", *args)


def status(db: psycopg.Connection, run_id: str) -> str:
    return header(db, run_id)["status"]


def test_submit_wait_runs_on_a_worker_like_run_does(database_env, db, ids, report_ready, tmp_path):
    args = ["--tenant-id", ids.tenants[0], "--threshold-days", "20", "--period-end", PERIOD_END]
    with workers(database_env, tmp_path) as [worker]:
        queued = submit(database_env, *args)
        assert queued.returncode == 0, queued.stderr
        run_id = queued.stdout.strip()
        waited = submit(database_env, *args, "--wait")
        assert waited.returncode == 0, waited.stderr
        waited_id = waited.stdout.strip()
        wait_until(lambda: status(db, run_id) == "SUCCEEDED", what="the first request")
        assert worker.stop() == 0

    direct = run_runner(database_env, "run", *args)
    assert direct.returncode == 0, direct.stderr
    for run_id_ in (run_id, waited_id):
        run = header(db, run_id_)
        assert (run["status"], run["attempts"]) == ("SUCCEEDED", 1)
        assert fact_rows(db, run_id_) == fact_rows(db, direct.stdout.strip()) != []
    assert f"run {waited_id} tenant {ids.tenants[0]} SUCCEEDED" in worker.text()
    assert "dbt=" in worker.text() and "total=" in worker.text()


def test_a_failing_request_fails_submit_wait(database_env, db, ids, report_ready, tmp_path):
    db.execute("alter table dyno_crm.pipeline_stage rename column stage_state to gone")
    try:
        with workers(database_env, tmp_path):
            done = submit(
                database_env, "--tenant-id", ids.tenants[0], "--threshold-days", "3", "--wait"
            )
    finally:
        db.execute("alter table dyno_crm.pipeline_stage rename column gone to stage_state")
    assert done.returncode == 1
    assert 'column "stage_state" does not exist' in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_submit_bad_input_exits_2_and_queues_nothing(database_env, db, ids, report_ready):
    before = db.execute(f"select count(*) from {REPORT_RUN_TABLE}").fetchone()[0]
    done = submit(database_env, "--tenant-id", ids.tenants[0], "--threshold-days", "soon")
    assert done.returncode == 2 and "--threshold-days" in done.stderr
    assert db.execute(f"select count(*) from {REPORT_RUN_TABLE}").fetchone()[0] == before


def test_two_workers_never_take_the_same_run(database_env, db, ids, report_ready, tmp_path):
    run_ids = []
    # --verbose: dbt's debug logging builds the manifest's lookups early, which once broke the
    # reuse of the parsed project; each run must still compute its own parameters.
    with workers(database_env, tmp_path, 2, "--verbose") as pair:
        for i in range(16):
            done = submit(
                database_env, "--tenant-id", ids.tenants[i % 3], "--threshold-days", str(i)
            )
            assert done.returncode == 0, done.stderr
            run_ids.append(done.stdout.strip())
        wait_until(
            lambda: all(status(db, run_id) == "SUCCEEDED" for run_id in run_ids),
            timeout=240,
            what="every request to finish",
        )
        assert [worker.stop() for worker in pair] == [0, 0]

    executions = [
        line
        for worker in pair
        for line in worker.text().splitlines()
        if line.startswith("worker ") and " SUCCEEDED " in line
    ]
    executed = [line.split(" run ")[1].split()[0] for line in executions]
    assert sorted(executed) == sorted(run_ids)
    assert all(header(db, run_id)["attempts"] == 1 for run_id in run_ids)
    assert all(
        any(line.startswith("worker ") and " SUCCEEDED " in line for line in w.text().splitlines())
        for w in pair
    ), "both workers took a share"
    for i, run_id in enumerate(run_ids):
        thresholds = db.execute(
            "select distinct threshold_days from dyno_crm.report_deal_aging_fact where run_id = %s",
            (run_id,),
        ).fetchall()
        assert thresholds == [(i,)], (run_id, thresholds)


def test_a_killed_workers_run_is_recovered_by_another(
    database_env, db, ids, report_ready, tmp_path
):
    blocker = block_deals(database_env["PGDATABASE"])
    try:
        with workers(database_env, tmp_path) as [doomed]:
            done = submit(database_env, "--tenant-id", ids.tenants[1], "--threshold-days", "9")
            run_id = done.stdout.strip()
            wait_until(lambda: blocked_on_lock(db), what="the run to reach the deal table")
            doomed.process.kill()
            doomed.process.wait()
        assert status(db, run_id) == "IN_PROGRESS"
        (tmp_path / "rescuer").mkdir()
        with workers(database_env, tmp_path / "rescuer") as [rescuer]:
            wait_until(lambda: "requeued" in rescuer.text(), what="the rescuer to requeue the run")
            blocker.close()
            wait_until(lambda: status(db, run_id) == "SUCCEEDED", what="the rescued run")
            assert rescuer.stop() == 0
    finally:
        blocker.close()
    assert header(db, run_id)["attempts"] == 2
    assert fact_rows(db, run_id)


def test_sigterm_finishes_the_run_in_hand_and_claims_nothing_new(
    database_env, db, ids, report_ready, tmp_path
):
    blocker = block_deals(database_env["PGDATABASE"])
    try:
        with workers(database_env, tmp_path) as [worker]:
            first = submit(
                database_env, "--tenant-id", ids.tenants[0], "--threshold-days", "8"
            ).stdout.strip()
            wait_until(lambda: blocked_on_lock(db), what="the first run to block")
            second = submit(
                database_env, "--tenant-id", ids.tenants[0], "--threshold-days", "9"
            ).stdout.strip()
            worker.process.send_signal(signal.SIGTERM)
            wait_until(lambda: "SIGTERM" in worker.text(), what="the worker to take the signal")
            blocker.close()
            assert worker.process.wait(timeout=120) == 0
    finally:
        blocker.close()
    assert status(db, first) == "SUCCEEDED"
    assert status(db, second) == "QUEUED"
    db.execute(f"delete from {REPORT_RUN_TABLE} where run_id = %s", (second,))


def test_worker_survives_a_database_outage_and_loses_no_request(
    database_env, db, ids, report_ready, tmp_path
):
    name = database_env["PGDATABASE"]
    blocker = block_deals(name)
    run_ids = []
    with workers(database_env, tmp_path) as [worker]:
        for threshold in ("5", "6", "7"):
            run_ids.append(
                submit(
                    database_env, "--tenant-id", ids.tenants[2], "--threshold-days", threshold
                ).stdout.strip()
            )
        wait_until(lambda: blocked_on_lock(db), what="the first run to block")
        with connect("postgres", autocommit=True) as admin:
            # The outage: no new connections, every session cut, for a few seconds.
            admin.execute(f'alter database "{name}" allow_connections false')
            admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (name,)
            )
            wait_until(lambda: "lost the database" in worker.text(), what="the worker to notice")
            wait_until(lambda: "retrying" in worker.text(), what="a failed reconnect")
            admin.execute(f'alter database "{name}" allow_connections true')
        with connect(name) as fresh:
            wait_until(
                lambda: all(status(fresh, run_id) == "SUCCEEDED" for run_id in run_ids),
                timeout=240,
                what="every request after the outage",
            )
            attempts = [header(fresh, run_id)["attempts"] for run_id in run_ids]
        assert worker.stop() == 0
    blocker.close()
    assert attempts == [2, 1, 1]
