"""`python -m runner`: report runs for orchestrators (cron, Airflow, Dagster, the CRM backend)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg

from runner import html_report, render
from runner.dbt.invocation import DbtSettings
from runner.domain.errors import BadInput, RunFailed, RunnerError
from runner.domain.params import (
    CHANGES,
    build_params,
    optional,
    parse_choice,
    parse_count,
    parse_schema_name,
    parse_uuid,
)
from runner.domain.runs import RunRequest, RunStatus
from runner.domain.timeouts import Timeouts
from runner.domain.vocabulary import DEFAULT_SOURCE_SCHEMA
from runner.store import limits, liveness, queue, reports, retention
from runner.store.connection import connect
from runner.store.tables import (
    CRM_TABLES,
    Tables,
    has_crm_tables,
    has_tenant,
    table_exists,
    tenants,
)
from runner.usecases.execute import ensure_setup, execute_runs
from runner.usecases.worker import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, Worker, WorkerSettings

# The percentiles `suggest-limits` learns a limit from, as threshold_mode p75 and p90 do.
PERCENTILES = ("75", "90")

EXIT_CODES = """\
exit codes:
  0  success
  1  the run failed (its report_run header says FAILED with the reason),
     or the database could not be reached
  2  bad input: nothing was written

Connection settings come from the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD and
PGDATABASE (default 127.0.0.1:5432); the report tables are in DEAL_AGING_SCHEMA (default dyno_crm).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runner",
        description="Deal Aging / At-Risk Deals report runs.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="execute one report run",
        description="Execute one report run: header, dbt, status. Prints the run_id on success.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(run)
    run.add_argument(
        "--run-id", metavar="UUID", help="retry an earlier run: its facts are replaced"
    )
    _add_dbt_options(run)

    submit = commands.add_parser(
        "submit",
        help="queue a report run for the workers",
        description="Queue a report run (status QUEUED) and print its run_id at once; a worker"
        " (`python -m runner worker`) executes it. --wait blocks and exits like `run`.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(submit)
    submit.add_argument("--wait", action="store_true", help="block until the run has finished")
    submit.add_argument(
        "--timeout",
        default="600",
        metavar="SECONDS",
        help="with --wait: give up after this long (default 600); a request no worker has"
        " started by then is withdrawn (FAILED)",
    )
    _add_dbt_options(submit)

    worker = commands.add_parser(
        "worker",
        help="execute queued runs, keeping dbt loaded",
        description="Load dbt once and execute queued runs, up to --batch-size at once in one dbt"
        " invocation; a lone request runs at once. SIGTERM: finish the batch in hand, claim"
        " nothing new, exit 0.",
    )
    worker.add_argument("--source-schema", metavar="NAME", help="schema of the CRM tables")
    _add_timeout_options(worker, "of a run whose request names none")
    worker.add_argument("--poll-seconds", default="1", metavar="S", help="idle wake-up interval")
    worker.add_argument(
        "--sweep-seconds",
        default="10",
        metavar="S",
        help="how often to requeue the runs of workers that died",
    )
    worker.add_argument(
        "--batch-size",
        default=str(DEFAULT_BATCH_SIZE),
        metavar="N",
        help=f"the most queued runs computed in one dbt invocation (default {DEFAULT_BATCH_SIZE})",
    )
    worker.add_argument(
        "--exit-when-idle", action="store_true", help="stop once the queue is empty"
    )
    _add_dbt_options(worker)

    setup = commands.add_parser(
        "setup",
        help="create or upgrade the report's tables and views",
        description="Create or upgrade everything the report needs in the database: report_run,"
        " the run-keyed tables and the dashboards' views. Idempotent; `run`, `submit` and"
        " `worker` do it themselves when something is missing.",
    )
    setup.add_argument("--source-schema", metavar="NAME", help="schema of the CRM tables")
    setup.add_argument(
        "--optional-tables",
        action="store_true",
        help="also create the optional tables the CRM or an analyst fills (per-stage limits,"
        " snoozed deals) that are missing",
    )
    _add_dbt_options(setup)

    suggest = commands.add_parser(
        "suggest-limits",
        help="per-stage limits learned from the last 365 days of completed stage visits",
        description="Print, per stage of the tenant, how many visits ended in the last 365 days"
        " and the 50th, 75th and 90th percentile of their days, with the limit learned from them"
        " (the percentile rounded up, for stages with 5 or more visits). --write sets those"
        " limits in the optional table deal_aging_stage_threshold.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    suggest.add_argument("--tenant-id", required=True, metavar="UUID")
    suggest.add_argument(
        "--percentile", default="75", metavar="75|90", help="the learned limit's (default 75)"
    )
    suggest.add_argument(
        "--write", action="store_true", help="set the learned limits as the stages' own limits"
    )
    suggest.add_argument("--source-schema", metavar="NAME", help="schema of the CRM tables")
    suggest.add_argument("--json", action="store_true")
    _add_dbt_options(suggest)

    listing = commands.add_parser("list", help="list recent runs")
    listing.add_argument("--tenant-id", metavar="UUID")
    listing.add_argument("--status", choices=[status.value for status in RunStatus])
    listing.add_argument("--limit", default="20", metavar="N")
    listing.add_argument("--json", action="store_true")

    show = commands.add_parser("show", help="show one run and its report")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--source-schema", default="dyno_crm", metavar="NAME")
    show.add_argument("--deals", action="store_true", help="list the at-risk deals, worst first")
    show.add_argument(
        "--changes",
        action="store_true",
        help="list the deals newly at risk, still at risk and recovered since the previous run"
        " (runs with --changes track)",
    )
    show.add_argument("--json", action="store_true")
    show.add_argument(
        "--html",
        metavar="FILE",
        help="write the run's page (one self-contained HTML file, charts inline) to FILE and"
        " print FILE",
    )

    sweep = commands.add_parser(
        "sweep",
        help="requeue or mark FAILED the runs left IN_PROGRESS by runners and workers that are gone",
    )
    sweep.add_argument("--older-than", required=True, metavar="MINUTES")

    prune = commands.add_parser(
        "prune",
        help="delete finished runs older than DAYS with their rows, keeping each tenant's latest",
    )
    prune.add_argument("--older-than-days", required=True, metavar="DAYS")
    prune.add_argument(
        "--keep-latest",
        default="1",
        metavar="N",
        help="SUCCEEDED runs of each tenant kept however old (default 1: the dashboards' latest)",
    )
    prune.add_argument("--tenant-id", metavar="UUID", help="prune this tenant's runs only")
    prune.add_argument("--dry-run", action="store_true", help="print what would go, delete nothing")
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--tenant-id", metavar="UUID")
    scope.add_argument(
        "--all-tenants",
        action="store_true",
        help="one run per tenant (one header each); `run` computes them in one dbt invocation,"
        " the workers in batches",
    )
    parser.add_argument(
        "--threshold-days", required=True, metavar="INT", help="stage limit in days"
    )
    parser.add_argument(
        "--cycle-threshold-days", metavar="INT", help="optional limit on days since creation"
    )
    parser.add_argument(
        "--period-start", metavar="ISO8601", help="stage entered at or after (UTC if no zone)"
    )
    parser.add_argument(
        "--period-end", metavar="ISO8601", help="stage entered before; also the as-of instant"
    )
    parser.add_argument("--pipeline-id", metavar="UUID")
    parser.add_argument("--stage-id", metavar="UUID")
    parser.add_argument("--principal-type", metavar="USER|GROUP")
    parser.add_argument("--principal-id", metavar="UUID")
    parser.add_argument(
        "--breakdown", metavar="owner", help="fact rows per pipeline, stage and owning user"
    )
    parser.add_argument(
        "--snoozes",
        metavar="ignore|honor",
        help="honor: a deal snoozed past the as-of instant is not at risk (default ignore)",
    )
    parser.add_argument(
        "--aging-calendar",
        metavar="calendar|business",
        help="business: ages and limits in the tenant's working days (default calendar)",
    )
    parser.add_argument(
        "--threshold-mode",
        metavar="fixed|p75|p90",
        help="p75, p90: each stage's limit is that percentile of its completed visits of the last"
        " 365 days, where it has 5 or more (default fixed: --threshold-days)",
    )
    parser.add_argument(
        "--changes",
        metavar="ignore|track",
        help="track: list which deals became at risk, stayed at risk or recovered since the"
        " tenant's previous run with the same parameters (default ignore)",
    )
    parser.add_argument(
        "--source-schema", metavar="NAME", help="schema of the CRM tables (default dyno_crm)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON object per run instead of the run_id"
    )
    parser.add_argument(
        "--html-dir",
        metavar="DIR",
        help="write each SUCCEEDED run's page to DIR/<tenant>-<run_id>.html (submit: with --wait)",
    )
    _add_timeout_options(parser, "of this run")


def _add_timeout_options(parser: argparse.ArgumentParser, whose: str) -> None:
    lock_default, statement_default = Timeouts.defaults().as_params().values()
    parser.add_argument(
        "--lock-timeout",
        metavar="SECONDS",
        help=f"longest wait for a lock {whose}: it then FAILS (default {lock_default}; 0: none)",
    )
    parser.add_argument(
        "--statement-timeout",
        metavar="SECONDS",
        help=f"longest statement {whose} (default {statement_default}; 0: none)",
    )


def _add_dbt_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profiles-dir", metavar="DIR", help="dbt profiles directory (default: PG* variables)"
    )
    parser.add_argument("--target", metavar="NAME", help="dbt target of the profile")
    parser.add_argument(
        "--verbose", action="store_true", help="progress and dbt's full log on stderr"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    try:
        status = COMMANDS[args.command](args)
        # A reader that left early (`show ... | head`) shows here, not at interpreter exit.
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # Quiet, as Unix tools are; the shell sees 128 + SIGPIPE as for a tool the signal ended.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except psycopg.Error as exc:
        print(f"error: database error: {render.first_line(str(exc))}", file=sys.stderr)
        return 1


def configure_logging(args: argparse.Namespace) -> None:
    """Progress on stderr: a worker's lines are its output; `run` is quiet unless --verbose."""
    verbose = getattr(args, "verbose", False) or args.command == "worker"
    logging.basicConfig(
        stream=sys.stderr, format="%(message)s", level=logging.INFO if verbose else logging.WARNING
    )


def run_requests(args: argparse.Namespace) -> list[RunRequest]:
    """The runs the command line asks for, every value validated before any is written."""
    if args.all_tenants and getattr(args, "run_id", None):
        raise BadInput("--run-id retries one run: it cannot go with --all-tenants")
    params = build_params(
        threshold_days=args.threshold_days,
        cycle_threshold_days=args.cycle_threshold_days,
        period_start=args.period_start,
        period_end=args.period_end,
        pipeline_id=args.pipeline_id,
        principal_type=args.principal_type,
        principal_id=args.principal_id,
        stage_id=args.stage_id,
        breakdown=args.breakdown,
        snoozes=args.snoozes,
        aging_calendar=args.aging_calendar,
        threshold_mode=args.threshold_mode,
        changes=args.changes,
    )
    crm = source_schema(args) or DEFAULT_SOURCE_SCHEMA
    timeouts = timeouts_of(args)
    recorded = timeouts if args.command == "submit" else None
    tenant_id = None if args.all_tenants else parse_uuid("--tenant-id", args.tenant_id)
    run_id = optional(parse_uuid, "--run-id", getattr(args, "run_id", None))
    with connect(timeouts=timeouts) as conn:
        if not has_crm_tables(conn, crm):
            raise BadInput(
                f"--source-schema {crm}: no CRM tables ({', '.join(CRM_TABLES)}) in that schema"
            )
        if tenant_id is not None and not has_tenant(conn, crm, tenant_id):
            raise BadInput(f"--tenant-id {tenant_id}: no such tenant (no pipeline) in {crm}")
        tenant_ids = [tenant_id] if tenant_id else tenants(conn, crm)
    if not tenant_ids:
        raise BadInput(f"--all-tenants: {crm} has no tenant with a pipeline")
    return [RunRequest(tenant, params, run_id or uuid4(), crm, recorded) for tenant in tenant_ids]


def timeouts_of(args: argparse.Namespace) -> Timeouts:
    return Timeouts.from_options(args.lock_timeout, args.statement_timeout)


def source_schema(args: argparse.Namespace) -> str | None:
    return optional(parse_schema_name, "--source-schema", args.source_schema)


def print_results(args: argparse.Namespace, documents: list[dict[str, Any]]) -> None:
    if args.json:
        print(render.to_json(documents if args.all_tenants else documents[0]))
    else:
        print("\n".join(document["run_id"] for document in documents))


def dbt_settings(args: argparse.Namespace) -> DbtSettings:
    return DbtSettings(profiles_dir=args.profiles_dir, target=args.target, verbose=args.verbose)


def write_pages(args: argparse.Namespace, run_ids: list[UUID]) -> None:
    """With --html-dir: each SUCCEEDED run's page, its path on stderr (stdout keeps the run ids)."""
    if not args.html_dir:
        return
    tables = Tables.from_environment()
    crm = source_schema(args) or DEFAULT_SOURCE_SCHEMA
    with connect() as conn:
        for run_id in run_ids:
            run = reports.get_run(conn, tables, run_id)
            if run is None or run["status"] != RunStatus.SUCCEEDED:
                continue
            path = Path(args.html_dir) / html_report.page_name(run)
            print(
                f"page {html_report.write_page(conn, tables, crm, run, path).path}", file=sys.stderr
            )


def cmd_run(args: argparse.Namespace) -> int:
    tables = Tables.from_environment()
    requests = run_requests(args)
    results = execute_runs(
        requests, dbt_settings(args), tables, source_schema(args), timeouts_of(args)
    )
    print_results(args, [result.as_json() for result in results])
    write_pages(args, [result.run_id for result in results])
    return report_failures([(r.run_id, r.error_message) for r in results if not r.succeeded])


def report_failures(failures: list[tuple[UUID, str | None]]) -> int:
    """One line per failed run on stderr; exit 1 when there is any."""
    for run_id, reason in failures:
        print(f"error: {RunFailed(run_id, reason or 'no reason recorded')}", file=sys.stderr)
    return 1 if failures else 0


def cmd_submit(args: argparse.Namespace) -> int:
    tables = Tables.from_environment()
    wait_seconds = parse_count("--timeout", args.timeout, "seconds")
    if args.html_dir and not args.wait:
        raise BadInput("--html-dir writes the pages of finished runs: it needs --wait")
    requests = run_requests(args)
    with connect(timeouts=timeouts_of(args)) as conn:
        ensure_setup(
            conn, tables, dbt_settings(args), source_schema(args), timeouts=timeouts_of(args)
        )
        queue.submit(conn, tables, *requests)
        if not args.wait:
            print_results(
                args, [{"run_id": str(r.run_id), "status": RunStatus.QUEUED} for r in requests]
            )
            return 0
        deadline = time.monotonic() + wait_seconds
        finished = [
            (
                request.run_id,
                *queue.wait_for(conn, tables, request.run_id, wait_seconds, deadline),
            )
            for request in requests
        ]
    print_results(args, [{"run_id": str(run_id), "status": s} for run_id, s, _ in finished])
    write_pages(args, [run_id for run_id, _, _ in finished])
    return report_failures([(run_id, e) for run_id, s, e in finished if s == RunStatus.FAILED])


def cmd_worker(args: argparse.Namespace) -> int:
    settings = WorkerSettings(
        dbt=dbt_settings(args),
        tables=Tables.from_environment(),
        source_schema=source_schema(args),
        timeouts=timeouts_of(args),
        poll_seconds=_seconds("--poll-seconds", args.poll_seconds),
        sweep_seconds=_seconds("--sweep-seconds", args.sweep_seconds),
        exit_when_idle=args.exit_when_idle,
        batch_size=batch_size(args.batch_size),
    )
    return Worker(settings).serve()


def batch_size(text: str) -> int:
    size = parse_count("--batch-size", text, "runs")
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise BadInput(f"--batch-size: expected 1 to {MAX_BATCH_SIZE} runs, got {text!r}")
    return size


def _seconds(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise BadInput(f"{option}: expected a number of seconds above 0, got {text!r}")
    return value


def cmd_setup(args: argparse.Namespace) -> int:
    tables = Tables.from_environment()
    with connect() as conn:
        ensure_setup(
            conn,
            tables,
            dbt_settings(args),
            source_schema(args),
            upgrade=True,
            optional_tables=args.optional_tables,
        )
    print(f"the report's relations are ready in {tables.schema}", file=sys.stderr)
    return 0


def cmd_suggest_limits(args: argparse.Namespace) -> int:
    tenant_id = parse_uuid("--tenant-id", args.tenant_id)
    percentile = parse_choice("--percentile", args.percentile, PERCENTILES)
    crm = source_schema(args) or DEFAULT_SOURCE_SCHEMA
    tables = Tables.from_environment()
    with connect() as conn:
        if not has_tenant(conn, crm, tenant_id):
            raise BadInput(f"--tenant-id {tenant_id}: no such tenant (no pipeline) in {crm}")
        if args.write and not table_exists(conn, tables, limits.STAGE_THRESHOLDS):
            raise BadInput(
                f"--write sets {limits.STAGE_THRESHOLDS}, which does not exist in {tables.schema}:"
                " create it with `python -m runner setup --optional-tables`"
            )
        ensure_setup(conn, tables, dbt_settings(args), source_schema(args))
        stages = limits.stage_limits(conn, tables, tenant_id)
        learned = {
            row["stage_id"]: row[f"p{percentile}_limit_days"]
            for row in stages
            if row[f"p{percentile}_limit_days"] is not None
        }
        if args.write:
            limits.write_stage_thresholds(conn, tables, tenant_id, learned)
    print(render.to_json(stages) if args.json else render.stage_limits_table(stages, percentile))
    if args.write:
        print(
            f"{len(learned)} stage limit(s) set in {tables.schema}.{limits.STAGE_THRESHOLDS}",
            file=sys.stderr,
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    tenant_id = optional(parse_uuid, "--tenant-id", args.tenant_id)
    limit = parse_count("--limit", args.limit, "runs")
    with connect() as conn:
        runs = reports.list_runs(conn, Tables.from_environment(), tenant_id, args.status, limit)
    print(render.to_json(runs) if args.json else render.runs_table(runs))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    run_id = parse_uuid("RUN_ID", args.run_id)
    source_schema = parse_schema_name("--source-schema", args.source_schema)
    tables = Tables.from_environment()
    with connect() as conn:
        run = reports.get_run(conn, tables, run_id)
        if run is None:
            raise BadInput(f"RUN_ID: no report run {run_id} in {tables.schema}.report_run")
        if args.html:
            written = html_report.write_page(conn, tables, source_schema, run, Path(args.html))
            print(written.path)
            return 0
        facts = reports.run_facts(conn, tables, source_schema, run_id)
        deals = reports.run_deals(conn, tables, source_schema, run_id) if args.deals else None
        changes = reports.run_changes(conn, tables, source_schema, run_id) if args.changes else None
    if args.json:
        listed = {"deals": deals, "changes": changes}
        print(
            render.to_json(
                {"run": run, "facts": facts}
                | {name: rows for name, rows in listed.items() if rows is not None}
            )
        )
        return 0
    print(render.run_header(run))
    print()
    print(render.facts_table(facts) if facts else "(no open deals in scope: no fact rows)")
    if deals is not None:
        print()
        print(render.deals_table(deals) if deals else "(no deal at risk)")
    if changes is not None:
        print()
        print(render.changes_table(changes) if changes else _no_changes(run))
    return 0


def _no_changes(run: dict[str, Any]) -> str:
    if (run["input_params"] or {}).get("changes") != CHANGES[-1]:
        return "(this run did not track changes: run it with --changes track)"
    return "(no deal at risk, in this run or in its previous run)"


def cmd_sweep(args: argparse.Namespace) -> int:
    minutes = parse_count("--older-than", args.older_than, "minutes")
    with connect() as conn:
        swept = liveness.sweep(conn, Tables.from_environment(), minutes)
    for run_id in [*swept.failed, *swept.requeued]:
        print(run_id)
    print(
        f"{len(swept.failed)} abandoned run(s) marked FAILED,"
        f" {len(swept.requeued)} queued request(s) requeued",
        file=sys.stderr,
    )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    policy = retention.Retention(
        older_than_days=parse_count("--older-than-days", args.older_than_days, "days"),
        keep_latest=parse_count("--keep-latest", args.keep_latest, "runs"),
        tenant_id=optional(parse_uuid, "--tenant-id", args.tenant_id),
    )
    if policy.keep_latest < 1:
        raise BadInput(
            f"--keep-latest must be 1 or more, got {args.keep_latest!r}: the dashboards show"
            " each tenant's latest run"
        )
    tables = Tables.from_environment()
    with connect() as conn:
        candidates = retention.prunable_runs(conn, tables, policy)
        pruned = candidates if args.dry_run else retention.prune(conn, tables, candidates)
    for run_id in pruned:
        print(run_id)
    print(
        f"{len(pruned)} finished run(s) older than {policy.older_than_days} days"
        f" {'would be' if args.dry_run else 'were'} deleted with their rows;"
        f" the latest {policy.keep_latest} SUCCEEDED unfiltered run(s) of each tenant are kept",
        file=sys.stderr,
    )
    return 0


COMMANDS = {
    "run": cmd_run,
    "submit": cmd_submit,
    "worker": cmd_worker,
    "setup": cmd_setup,
    "suggest-limits": cmd_suggest_limits,
    "list": cmd_list,
    "show": cmd_show,
    "sweep": cmd_sweep,
    "prune": cmd_prune,
}
