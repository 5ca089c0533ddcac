"""`python -m runner`: report runs for orchestrators (cron, Airflow, Dagster, the CRM backend)."""

from __future__ import annotations

import argparse
import sys

from runner import render, report_runs
from runner.database import connect
from runner.dbt_invocation import DbtSettings
from runner.errors import BadInput, RunnerError
from runner.execute import RunRequest, execute_runs
from runner.params import build_params, optional, parse_day_count, parse_uuid
from runner.report_runs import Tables

EXIT_CODES = """\
exit codes:
  0  success
  1  the run failed (its report_run header says FAILED with the reason),
     or the database could not be reached
  2  bad input: nothing was written

Connection settings come from the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD and
PGDATABASE (default 127.0.0.1:5432); the report tables are in DEAL_AGING_SCHEMA (default dyno_crm).
"""
STATUSES = ("IN_PROGRESS", "SUCCEEDED", "FAILED")


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
    scope = run.add_mutually_exclusive_group(required=True)
    scope.add_argument("--tenant-id", metavar="UUID")
    scope.add_argument(
        "--all-tenants",
        action="store_true",
        help="one run per tenant (one header each), computed in one dbt invocation",
    )
    run.add_argument("--threshold-days", required=True, metavar="INT", help="stage limit in days")
    run.add_argument(
        "--cycle-threshold-days", metavar="INT", help="optional limit on days since creation"
    )
    run.add_argument(
        "--period-start", metavar="ISO8601", help="stage entered at or after (UTC if no zone)"
    )
    run.add_argument(
        "--period-end", metavar="ISO8601", help="stage entered before; also the as-of instant"
    )
    run.add_argument("--pipeline-id", metavar="UUID")
    run.add_argument("--stage-id", metavar="UUID")
    run.add_argument("--principal-type", metavar="USER|GROUP")
    run.add_argument("--principal-id", metavar="UUID")
    run.add_argument(
        "--breakdown",
        metavar="owner",
        help="fact rows per pipeline, stage and owning user",
    )
    run.add_argument(
        "--run-id", metavar="UUID", help="retry an earlier run: its facts are replaced"
    )
    run.add_argument(
        "--source-schema", metavar="NAME", help="schema of the CRM tables (default dyno_crm)"
    )
    run.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the run_id"
    )
    _add_dbt_options(run)

    listing = commands.add_parser("list", help="list recent runs")
    listing.add_argument("--tenant-id", metavar="UUID")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", default="20", metavar="N")
    listing.add_argument("--json", action="store_true")

    show = commands.add_parser("show", help="show one run and its report")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--source-schema", default="dyno_crm", metavar="NAME")
    show.add_argument("--deals", action="store_true", help="list the at-risk deals, worst first")
    show.add_argument("--json", action="store_true")

    sweep = commands.add_parser(
        "sweep", help="mark FAILED the runs left IN_PROGRESS by runners that are gone"
    )
    sweep.add_argument("--older-than", required=True, metavar="MINUTES")
    return parser


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
    try:
        return COMMANDS[args.command](args)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    if args.all_tenants and args.run_id:
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
    )
    run_id = optional(parse_uuid, "--run-id", args.run_id)
    source_schema = optional(_schema_name, "--source-schema", args.source_schema)
    tables = Tables.from_environment()
    if args.all_tenants:
        with connect() as conn:
            tenant_ids = report_runs.tenants(conn, source_schema or "dyno_crm")
        if not tenant_ids:
            raise BadInput("--all-tenants: the CRM has no tenant with a pipeline")
        requests = [RunRequest(tenant, params) for tenant in tenant_ids]
    else:
        tenant_id = parse_uuid("--tenant-id", args.tenant_id)
        requests = [
            RunRequest(tenant_id, params, run_id) if run_id else RunRequest(tenant_id, params)
        ]
    dbt = DbtSettings(profiles_dir=args.profiles_dir, target=args.target, verbose=args.verbose)
    results = execute_runs(requests, dbt, tables, source_schema)
    if args.json:
        documents = [result.as_json() for result in results]
        print(render.to_json(documents if args.all_tenants else documents[0]))
    else:
        print("\n".join(str(result.run_id) for result in results))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    tenant_id = optional(parse_uuid, "--tenant-id", args.tenant_id)
    limit = parse_day_count("--limit", args.limit)
    with connect() as conn:
        runs = report_runs.list_runs(conn, Tables.from_environment(), tenant_id, args.status, limit)
    print(render.to_json(runs) if args.json else render.runs_table(runs))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    run_id = parse_uuid("RUN_ID", args.run_id)
    source_schema = _schema_name("--source-schema", args.source_schema)
    tables = Tables.from_environment()
    with connect() as conn:
        run = report_runs.get_run(conn, tables, run_id)
        if run is None:
            raise BadInput(f"RUN_ID: no report run {run_id} in {tables.schema}.report_run")
        facts = report_runs.run_facts(conn, tables, source_schema, run_id)
        deals = report_runs.run_deals(conn, tables, source_schema, run_id) if args.deals else None
    if args.json:
        print(
            render.to_json({"run": run, "facts": facts} | ({"deals": deals} if args.deals else {}))
        )
        return 0
    print(render.run_header(run))
    print()
    print(render.facts_table(facts) if facts else "(no open deals in scope: no fact rows)")
    if deals is not None:
        print()
        print(render.deals_table(deals) if deals else "(no deal at risk)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    minutes = parse_day_count("--older-than", args.older_than)
    with connect() as conn:
        swept = report_runs.sweep(conn, Tables.from_environment(), minutes)
    for run_id in swept:
        print(run_id)
    print(f"{len(swept)} abandoned run(s) marked FAILED", file=sys.stderr)
    return 0


def _schema_name(option: str, text: str) -> str:
    if not text.isidentifier() or not text.isascii() or len(text) > 63:
        raise BadInput(f"{option}: expected a plain schema name, got {text!r}")
    return text


COMMANDS = {"run": cmd_run, "list": cmd_list, "show": cmd_show, "sweep": cmd_sweep}
