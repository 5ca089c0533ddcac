"""Warm workers compute queued runs in batches, one dbt invocation each: every run of a batch gets
exactly its own facts and deal list, and one run's failure is that run's alone."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import psycopg

from runner import cli

from .report_checks import assert_run_matches_oracle, deal_rows, fact_rows, header
from .runner_process import block_deals, blocked_on_lock, run_runner, wait_until
from .support import REPORT_RUN_TABLE
from .test_tenant_isolation import amounts_past_the_column, bad_rows
from .test_worker import PERIOD_END, WorkerProcess, status, submit, workers


def queue(db: psycopg.Connection, *requests: list[str]) -> list[str]:
    """`submit` each request, in this process: a worker started afterwards finds them queued, and
    nothing else (a request an earlier test left in this database's queue goes first)."""
    db.execute(f"delete from {REPORT_RUN_TABLE} where status = 'QUEUED'")
    run_ids = []
    for args in requests:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert cli.main(["submit", *args]) == 0
        run_ids.append(printed.getvalue().strip())
    return run_ids


def drain(database_env, tmp_path: Path, *args: str) -> WorkerProcess:
    """A worker that computes what is queued, then exits."""
    with workers(database_env, tmp_path, 1, "--exit-when-idle", *args) as [worker]:
        assert worker.process.wait(timeout=300) == 0, worker.text()[-3000:]
    return worker


def executions(worker: WorkerProcess) -> dict[str, str]:
    """Each run the worker closed, with its log line; a run closed twice fails the test."""
    lines: dict[str, str] = {}
    for line in worker.text().splitlines():
        if line.startswith("worker ") and " run " in line and " attempt=" in line:
            run_id = line.split(" run ")[1].split()[0]
            assert run_id not in lines, f"run {run_id} executed twice"
            lines[run_id] = line
    return lines


def ten_requests(ids) -> list[list[str]]:
    """Different tenants and parameters (the filters name the biggest tenant's pipeline, stage
    and owners), the as-of instant fixed so that each run can be compared with a run alone."""
    big, second, third = ids.tenants
    varied = [
        (big, []),
        (second, ["--cycle-threshold-days", "40"]),
        (third, ["--breakdown", "owner"]),
        (second, ["--period-start", "2025-01-01T00:00:00Z"]),
        (big, ["--principal-type", "USER", "--principal-id", ids.owner_user_id]),
        (big, ["--pipeline-id", ids.pipeline_id]),
        (big, ["--stage-id", ids.open_stage_id]),
        (big, ["--principal-type", "GROUP", "--principal-id", ids.owner_group_id]),
        (third, ["--cycle-threshold-days", "5", "--breakdown", "owner"]),
        (third, []),
    ]
    return [
        [
            "--tenant-id",
            tenant,
            "--threshold-days",
            str(3 + 4 * i),
            "--period-end",
            PERIOD_END,
            *extra,
        ]
        for i, (tenant, extra) in enumerate(varied)
    ]


def test_a_batch_of_mixed_tenants_and_parameters_matches_each_run_alone(
    database_env, db, ids, report_ready, tmp_path
):
    requests = ten_requests(ids)
    batched = queue(db, *requests)
    lines = executions(drain(database_env, tmp_path, "--batch-size", "10"))
    assert set(lines) == set(batched)
    assert all(line.endswith(" batch=10") for line in lines.values()), lines

    # The same requests again, each alone: one dbt invocation per run.
    alone = queue(db, *requests)
    (tmp_path / "alone").mkdir()
    lines = executions(drain(database_env, tmp_path / "alone", "--batch-size", "1"))
    assert set(lines) == set(alone)
    assert all(line.endswith(" batch=1") for line in lines.values()), lines
    for batched_id, alone_id in zip(batched, alone, strict=True):
        run = header(db, batched_id)
        assert (run["status"], run["attempts"]) == ("SUCCEEDED", 1), run["error_message"]
        assert fact_rows(db, batched_id) == fact_rows(db, alone_id) != []
        assert deal_rows(db, batched_id) == deal_rows(db, alone_id)
    # And as `python -m runner run` computes it.
    ran = run_runner(database_env, "run", *requests[0])
    assert ran.returncode == 0, ran.stderr
    assert fact_rows(db, batched[0]) == fact_rows(db, ran.stdout.strip())
    assert deal_rows(db, batched[0]) == deal_rows(db, ran.stdout.strip())
    assert_run_matches_oracle(db, header(db, batched[0]))


def test_a_run_failing_on_its_own_data_fails_alone_in_its_batch(
    database_env, db, ids, report_ready, tmp_path
):
    culprit_tenant = ids.tenants[2]
    requests = [
        ["--tenant-id", ids.tenants[i % 2], "--threshold-days", str(10 + i)] for i in range(9)
    ]
    with bad_rows(db, culprit_tenant, amounts_past_the_column):
        culprit, *others = queue(
            db, ["--tenant-id", culprit_tenant, "--threshold-days", "30"], *requests
        )
        lines = executions(drain(database_env, tmp_path, "--batch-size", "10"))

    assert set(lines) == {culprit, *others}
    assert all(line.endswith(" batch=10") for line in lines.values()), lines
    failed = header(db, culprit)
    assert (failed["status"], failed["attempts"]) == ("FAILED", 1)
    assert "numeric field overflow" in failed["error_message"]
    assert fact_rows(db, culprit) == []
    for run_id in others:
        run = header(db, run_id)
        assert (run["status"], run["attempts"]) == ("SUCCEEDED", 1), run["error_message"]
        assert_run_matches_oracle(db, run)


def test_a_run_that_fails_its_whole_batch_is_bisected_out(
    database_env, db, ids, report_ready, tmp_path
):
    run_ids = queue(
        db,
        *(["--tenant-id", ids.tenants[i % 3], "--threshold-days", str(20 + i)] for i in range(10)),
    )
    # A header is input from outside too: dbt refuses this one, and with it the whole invocation.
    culprit = run_ids[6]
    db.execute(
        f"update {REPORT_RUN_TABLE} set input_params = jsonb_set(input_params,"
        " '{threshold_days}', '\"{{ 7 }}\"') where run_id = %s",
        (culprit,),
    )
    worker = drain(database_env, tmp_path, "--batch-size", "10")
    lines = executions(worker)

    assert set(lines) == set(run_ids)
    assert "10 runs failed together" in worker.text()
    assert lines[culprit].endswith(" batch=1")
    failed = header(db, culprit)
    assert (failed["status"], failed["attempts"]) == ("FAILED", 1)
    assert "threshold_days" in failed["error_message"]
    for run_id in run_ids:
        if run_id != culprit:
            run = header(db, run_id)
            assert (run["status"], run["attempts"]) == ("SUCCEEDED", 1), run["error_message"]
            assert_run_matches_oracle(db, run)


def test_a_batch_whose_worker_is_killed_is_requeued_and_completed_once(
    database_env, db, ids, report_ready, tmp_path
):
    run_ids = queue(
        db,
        *(["--tenant-id", ids.tenants[i % 3], "--threshold-days", str(30 + i)] for i in range(5)),
    )
    blocker = block_deals(database_env["PGDATABASE"])
    try:
        with workers(database_env, tmp_path, 1, "--batch-size", "10") as [doomed]:
            wait_until(lambda: blocked_on_lock(db), what="the batch to reach the deal table")
            assert {status(db, run_id) for run_id in run_ids} == {"IN_PROGRESS"}
            doomed.process.kill()
            doomed.process.wait()
        (tmp_path / "rescuer").mkdir()
        with workers(database_env, tmp_path / "rescuer", 1, "--batch-size", "10") as [rescuer]:
            wait_until(lambda: "requeued" in rescuer.text(), what="the rescuer to requeue them")
            blocker.close()
            wait_until(
                lambda: all(status(db, run_id) == "SUCCEEDED" for run_id in run_ids),
                timeout=120,
                what="every run of the batch",
            )
            assert rescuer.stop() == 0
    finally:
        blocker.close()
    assert set(executions(rescuer)) == set(run_ids)
    for run_id in run_ids:
        run = header(db, run_id)
        assert run["attempts"] == 2
        assert_run_matches_oracle(db, run)


def test_submit_all_tenants_queues_a_run_per_tenant_for_the_workers(
    database_env, db, ids, report_ready, tmp_path
):
    args = ["--all-tenants", "--threshold-days", "17", "--period-end", PERIOD_END]
    with workers(database_env, tmp_path, 1, "--batch-size", "50") as [worker]:
        done = submit(database_env, *args, "--wait", "--timeout", "120")
        assert worker.stop() == 0
    assert done.returncode == 0, done.stderr
    run_ids = done.stdout.split()
    assert sorted(str(header(db, run_id)["tenant_id"]) for run_id in run_ids) == sorted(ids.tenants)
    assert set(executions(worker)) == set(run_ids)
    for run_id in run_ids:
        assert_run_matches_oracle(db, header(db, run_id))


def test_a_batch_size_out_of_range_exits_2_before_loading_dbt(database_env):
    for size in ("0", "1001", "ten"):
        done = run_runner(database_env, "worker", "--batch-size", size, timeout=30)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "--batch-size" in done.stderr


def test_the_oldest_request_is_claimed_first_with_others_sharing_its_bounds(
    database_env, db: psycopg.Connection, ids, report_ready, tmp_path
):
    tenant = ids.tenants[1]
    first, strict, second = queue(
        db,
        ["--tenant-id", tenant, "--threshold-days", "1"],
        ["--tenant-id", tenant, "--threshold-days", "2", "--statement-timeout", "50"],
        ["--tenant-id", tenant, "--threshold-days", "3"],
    )
    lines = executions(drain(database_env, tmp_path, "--batch-size", "10"))
    assert list(lines) == [first, second, strict]
    assert lines[first].endswith(" batch=2") and lines[strict].endswith(" batch=1")
