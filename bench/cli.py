"""`python -m bench`: arguments, and the order in which everything is built and measured."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    breakdown,
    databases,
    dataset,
    history,
    indexes,
    latency,
    plans,
    report,
    scenarios,
    throughput,
    warm_worker,
    worker_memory,
)
from bench.sides import BENCH_ROOT, Sides
from bench.sizes import FULL, SMOKE, BenchSize
from crm_data.generator import tenant_ids

SCENARIOS = ("1", "2", "3", "4", "5", "7", "8", "9", "10", "11", "12")
RESULTS_DIR = BENCH_ROOT / "bench" / "results"
BIG_TARGET = 2.0  # a fresh run of the big tenant against the reference query
STATE_DIR = BENCH_ROOT / "target" / "bench"  # per-database dbt files (partial parse, compile)
PHASES = {"both": ("without", "with"), "without": ("without",), "with": ("with",)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The report at CRM scale: the runner against the reference query, "
        "fresh processes, alternating pairs, medians. Builds its databases once and reuses them.",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny size for CI (under a minute)")
    parser.add_argument(
        "--database",
        help="big database name (default deal_aging_bench, or "
        "deal_aging_bench_smoke with --smoke); NAME_small, NAME_history and NAME_worst too",
    )
    parser.add_argument(
        "--pairs", type=int, help="timed pairs per measurement (default 3, smoke 1)"
    )
    parser.add_argument(
        "--warmups", type=int, help="untimed runs of each side first (default 1, smoke 0)"
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="rebuild the databases even if reusable"
    )
    parser.add_argument("--keep", action="store_true", help="--smoke: keep the databases")
    parser.add_argument("--drop", action="store_true", help="drop the databases at the end")
    parser.add_argument(
        "--source-indexes",
        choices=sorted(PHASES),
        help="measure without the opt-in source indexes, with them, or both (default; smoke: with)",
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help="measurements to run, e.g. 1,2 (7: all-old data; 8-12: warm workers; default all)",
    )
    parser.add_argument("--no-plans", action="store_true", help="skip EXPLAIN ANALYZE")
    parser.add_argument("--no-profile", action="store_true", help="skip the time breakdown runs")
    parser.add_argument(
        "--plans-dir",
        type=Path,
        help="where plans go (default bench/plans; smoke: bench/results/plans-smoke)",
    )
    parser.add_argument(
        "--runner-project",
        type=Path,
        default=BENCH_ROOT,
        help="project whose runner is measured (default this checkout)",
    )
    args = parser.parse_args(argv)
    if args.pairs is not None and args.pairs < 1:
        parser.error("--pairs must be 1 or more")
    return args


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The healthy data as of today: rebuilt the first time the benchmark runs on a new day.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    size = (SMOKE if args.smoke else FULL).dated(today)
    big_db = args.database or ("deal_aging_bench_smoke" if args.smoke else "deal_aging_bench")
    names = (big_db, f"{big_db}_small", f"{big_db}_history", f"{big_db}_worst")
    drop_at_end = (args.smoke and not args.keep) or args.drop
    results = report.Results(title=f"Deal aging benchmark, {size.name} size")
    status = 0
    try:
        run(args, size, names, results)
    except databases.NotABenchDatabase as exc:
        say(f"error: {exc}")
        return 2
    except Exception as exc:  # keep what was measured: a full run takes a quarter of an hour
        results.notes.append(f"STOPPED by {type(exc).__name__}: {exc}")
        say(f"error: {type(exc).__name__}: {exc}")
        status = 1
    finally:
        if drop_at_end:
            for name in names:
                with contextlib.suppress(databases.NotABenchDatabase):
                    databases.drop(name)
                shutil.rmtree(STATE_DIR / name, ignore_errors=True)
            say(f"dropped {', '.join(names)}")
    text = report.render(results)
    print(text)
    saved = save(results, text, size)
    say(f"saved {saved}")
    return status


def run(
    args: argparse.Namespace,
    size: BenchSize,
    names: tuple[str, str, str, str],
    results: report.Results,
) -> None:
    big_db, small_db, history_db, worst_db = names
    only = set(args.only.split(","))
    pairs = args.pairs or size.pairs
    warmups = args.warmups if args.warmups is not None else (0 if args.smoke else 1)
    sides = Sides(args.runner_project.resolve(), STATE_DIR)
    plans_dir = args.plans_dir or (
        BENCH_ROOT / "bench" / ("results/plans-smoke" if args.smoke else "plans")
    )
    git_at_start = _git(args.runner_project)
    for name, part in ((big_db, "big"), (small_db, "small")):
        dataset.ensure(name, size, part, args.rebuild, say)
    by_size = dataset.tenants_by_size(big_db)
    deals = dict(by_size)
    big = scenarios.Tenant(*by_size[0])
    (small_id,) = tenant_ids(size.small)
    small = scenarios.Tenant(small_id, deals[small_id])
    queue_ids = tenant_ids(size.queue_tenants)
    queue_tenants = tuple(scenarios.Tenant(t, deals[t]) for t in queue_ids)
    identical = dataset.tenant_fingerprint(big_db, small.tenant_id) == dataset.tenant_fingerprint(
        small_db, small.tenant_id
    )
    with databases.connect(big_db) as conn:
        version = conn.execute("select version()").fetchone()[0]
        state_rows = conn.execute(
            "select count(*) from dyno_crm.deal_pipeline_stage_state"
        ).fetchone()[0]
    results.machine = report.machine_lines(version)
    crowd = [n for t, n in by_size if t != small.tenant_id and t not in queue_ids]
    queue_deals = sorted(t.deals for t in queue_tenants)
    results.setup = [
        f"{big_db}: {sum(deals.values()):,} deals over {len(by_size)} tenants,"
        f" {state_rows:,} stage rows, kept by a healthy team as of {size.crowd.as_of:%Y-%m-%d}:"
        f" {', '.join(f'{n:,}' for n in crowd)}, the small tenant's {small.deals:,}, and"
        f" {len(queue_tenants)} tenants of {queue_deals[0]:,}-{queue_deals[-1]:,} deals for the"
        " warm workers' queues",
        f"open deals in their stage for more than 30 days, now: {dataset.at_risk_share(big_db):.1%}",
        f"big tenant {big.tenant_id}, small tenant {small.tenant_id}",
        f"{small_db}: the small tenant alone, row for row the same as in {big_db}: "
        + ("yes" if identical else "NO"),
        f"runner project: {args.runner_project.resolve()} ({git_at_start})",
        f"pairs: {pairs}, warm-up runs per side: {warmups}; the runner reads a partial-parse file "
        "per database (DBT_PARTIAL_PARSE_FILE_PATH, written by `dbt parse`): see bench/sides.py",
        "every runner run starts on empty report tables (truncated, untimed), except the "
        "history side of measurement 5, which measures what earlier runs cost",
    ]
    sides.setup(big_db)  # requests are queued before any worker could make the report's tables
    for name in (big_db, small_db):
        history.truncate_runs(name)  # each benchmark starts from empty report tables
        sides.prime(name)
    setting = scenarios.Setting(
        sides=sides,
        big_db=big_db,
        small_db=small_db,
        history_db=history_db,
        worst_db=worst_db,
        big=big,
        small=small,
        tenants=len(by_size),
        queue_tenants=queue_tenants,
        load=size.queue,
        as_of=size.crowd.as_of,
        logs_dir=RESULTS_DIR / "workers" / f"{size.name}-{_stamp()}",
        pairs=pairs,
        warmups=warmups,
        say=say,
    )

    # The smoke size measures one index state unless told otherwise: CI needs the code paths, fast.
    phases = PHASES[args.source_indexes or ("with" if args.smoke else "both")]
    for phase in phases:
        label = "with source indexes" if phase == "with" else "no source indexes"
        _set_indexes(phase, sides, (big_db, small_db), results, say)
        suffix = "b" if phase == "with" and len(phases) > 1 else ("a" if len(phases) > 1 else "")
        if "1" in only:
            row = scenarios.one_tenant(setting, "1" + suffix, big, "big", warmups, BIG_TARGET)
            results.rows.append(_titled(row, label))
        if "2" in only:
            row = scenarios.one_tenant(
                setting, "2" + suffix, small, "small", warmups if "1" not in only else 0, None
            )
            fixed = row.pairs.a_median - row.pairs.b_median
            results.rows.append(_titled(row, label, f"fixed cost per run {fixed:.2f} s"))
        explained = {} if args.no_plans else {"small": small, "big": big}
        profiled = {} if args.no_profile or phase != phases[-1] else {"small": small, "big": big}
        for which in ("small", "big"):
            tenant = explained.get(which) or profiled.get(which)
            if tenant is None:
                continue
            # A run of its own on empty tables, with dbt's JSON debug log: where its time goes,
            # and the statements it executed, explained while its headers still name it.
            history.truncate_runs(big_db)
            run_ = sides.runner(big_db, tenant.tenant_id, "--verbose", DBT_LOG_FORMAT="json")
            if which in profiled:
                key = f"{which} tenant, {tenant.deals:,} deals"
                results.breakdowns[key] = breakdown.analyse(run_)
            if which in explained:
                results.plans += plans.capture(
                    big_db,
                    plans.executed_selects(run_),
                    {which: (tenant.tenant_id, tenant.deals)},
                    plans_dir / f"{phase}-source-indexes",
                    label,
                )
        if "3" in only:
            warm = 0 if ("1" in only or "2" in only) else warmups
            row = scenarios.all_tenants(setting, "3" + suffix, warm)
            results.rows.append(_titled(row, label))

    last_label = "with source indexes" if phases[-1] == "with" else "no source indexes"
    if "4" in only:
        results.rows.append(scenarios.tenant_not_table(setting, "4"))
    if "5" in only:
        scenarios.prepare_history(setting, size, args.rebuild)
        _set_indexes(phases[-1], sides, (history_db,), None, say)
        results.rows.append(scenarios.history_not_slower(setting, "5", size.history_runs))
        if not args.no_plans:
            run_ = sides.runner(history_db, small.tenant_id, "--verbose", DBT_LOG_FORMAT="json")
            results.plans += plans.capture_deletes(history_db, run_, plans_dir / "history")

    if "7" in only:
        dataset.ensure(worst_db, size, "worst", args.rebuild, say)
        # The worst case is also without the opt-in index, as the CRM ships its tables.
        _set_indexes("without", sides, (worst_db,), None, say)
        history.truncate_runs(worst_db)
        sides.prime(worst_db)
        worst_big = scenarios.Tenant(*dataset.tenants_by_size(worst_db)[0])
        results.setup.append(
            f"{worst_db}: the same tenants and deals, none ever closed for stalling, as of"
            f" {size.worst.as_of:%Y-%m-%d} (the benchmark's data before 2026-12): open deals in"
            f" their stage for more than 30 days, now: {dataset.at_risk_share(worst_db):.1%}"
        )
        row = scenarios.worst_case(setting, "7", worst_big, BIG_TARGET)
        results.rows.append(_titled(row, "no source indexes"))
    night_key, request_key = ("10" if "10" in only else None), ("11" if "11" in only else None)
    if night_key or request_key:
        for row in warm_worker.rows(setting, night_key, request_key):
            results.rows.append(_titled(row, last_label))
    if "8" in only:
        results.throughput, results.sampled = throughput.all_sizes(setting)
    if "9" in only:
        results.latency = latency.all_rates(setting)
    if "12" in only:
        results.worker_memory = worker_memory.measure(setting)

    if not args.no_profile:
        results.imports = _imports(sides, 1 if args.smoke else 3)
    if _git(args.runner_project) != git_at_start:
        results.notes.append(
            f"the runner project changed during the run ({git_at_start} at the start,"
            f" {_git(args.runner_project)} at the end): measure again"
        )
    results.machine.append(
        "load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )


def _titled(row: scenarios.Row, label: str, note: str = "") -> scenarios.Row:
    return replace(row, title=f"{row.title}, {label}", note=note or row.note)


def _set_indexes(
    phase: str,
    sides: Sides,
    names: tuple[str, ...],
    results: report.Results | None,
    say: Callable[[str], None],
) -> None:
    for name in names:
        if phase == "without":
            indexes.drop(name)
            continue
        if indexes.present(name):
            continue
        made = indexes.create(sides, name)
        line = (
            f"source indexes created in {name} by `dbt run-operation "
            f"deal_aging_create_source_indexes` in {made.seconds:.2f} s: "
            + ", ".join(f"{n} ({s})" for n, s in indexes.present(name))
        )
        say(line)
        if results is not None:
            results.levers.append(line)


def _imports(sides: Sides, repeat: int) -> dict[str, float]:
    def median_of(module: str) -> float:
        return statistics.median(sides.python_import(module).seconds for _ in range(repeat))

    empty = median_of("")
    return {
        "python -c pass (interpreter start)": empty,
        "runner.cli (the runner's own imports, psycopg)": median_of("runner.cli") - empty,
        "dbt.cli.main (dbt)": median_of("dbt.cli.main") - empty,
    }


def _git(project: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(project), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            # Only what a run executes: the models, macros, project file and runner.
            [
                "git",
                "-C",
                str(project),
                "status",
                "--porcelain",
                "--",
                "dbt_project.yml",
                "models",
                "macros",
                "runner",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"git {head}" + (f", {len(dirty.splitlines())} changed file(s)" if dirty else "")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def save(results: report.Results, text: str, size: BenchSize) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{size.name}-{_stamp()}.txt"
    path.write_text(text)
    rows = [
        {
            "key": r.key,
            "title": r.title,
            "target": r.target,
            "met": r.met,
            "a": r.pairs.a.label,
            "b": r.pairs.b.label,
            "a_seconds": [x.seconds for x in r.pairs.a_runs],
            "b_seconds": [x.seconds for x in r.pairs.b_runs],
            "a_max_rss_mib": [x.max_rss_mib for x in r.pairs.a_runs],
            "ratio": r.pairs.ratio,
        }
        for r in results.rows
    ]
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "rows": rows,
                "breakdowns": {k: asdict(v) for k, v in results.breakdowns.items()},
                "imports": results.imports,
                "time": time.time(),
            },
            indent=2,
        )
    )
    return path
