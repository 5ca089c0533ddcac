"""The benchmark's printout: the machine, the table of medians against the targets, the fixed
cost and where a run's time goes, memory, and the plans compared."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bench import latency, throughput, worker_memory
from bench.breakdown import Breakdown
from bench.equality import Sampled
from bench.latency import Latency
from bench.plans import Plan
from bench.scenarios import Row
from bench.throughput import Throughput
from bench.worker_memory import WorkerMemory


@dataclass
class Results:
    title: str
    machine: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    levers: list[str] = field(default_factory=list)
    imports: dict[str, float] = field(default_factory=dict)
    breakdowns: dict[str, Breakdown] = field(default_factory=dict)
    plans: list[Plan] = field(default_factory=list)
    throughput: list[Throughput] = field(default_factory=list)
    sampled: Sampled | None = None
    latency: list[Latency] = field(default_factory=list)
    worker_memory: WorkerMemory | None = None
    notes: list[str] = field(default_factory=list)


def machine_lines(pg_version: str) -> list[str]:
    mem_kib = 0
    if Path("/proc/meminfo").exists():
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"cores: {os.cpu_count()}, memory: {mem_kib / 1024 / 1024:.1f} GiB, load average: {load}",
        f"server: {pg_version}",
    ]


def _ratio(row: Row) -> str:
    return f"{row.pairs.ratio:.2f}x"


def _met(met: bool | None) -> str:
    return "met" if met else "MISSED"


def _verdict(row: Row) -> str:
    if row.margin is not None:
        return f"A-B <= +{row.margin:.2f} s " + _met(row.met)
    if row.target is None:
        return "-"
    return f"<= {row.target:.1f}x " + _met(row.met)


def table(rows: list[Row]) -> list[str]:
    width = max([52, *(len(row.title) + 2 for row in rows)])
    head = f"{'#':<4}{'measurement':<{width}}{'side A':>10}{'side B':>10}{'A/B':>8}  target"
    lines = [head, "-" * len(head)]
    for row in rows:
        p = row.pairs
        lines.append(
            f"{row.key:<4}{row.title:<{width}}{p.a_median:>9.2f}s{p.b_median:>9.2f}s"
            f"{_ratio(row):>8}  {_verdict(row)}"
        )
        lines.append(
            f"{'':<4}  A = {p.a.label} ({p.spread(p.a_runs)} s), B = {p.b.label}"
            f" ({p.spread(p.b_runs)} s), {len(p.a_runs)} pair(s)"
            + (f"; {row.note}" if row.note else "")
        )
    return lines


def memory(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        if row.pairs.a.label.startswith("runner") and row.key[0] in "123":
            rss = sorted(r.max_rss_mib for r in row.pairs.a_runs)
            lines.append(f"  {row.title}: runner peak RSS {rss[-1]:.0f} MiB (min {rss[0]:.0f})")
    return lines


def throughput_lines(results: list[Throughput], sampled: Sampled | None) -> list[str]:
    head = (
        f"  {'batch size':>10}{'requests':>10}{'seconds':>9}{'runs/s':>8}{'mean batch':>12}"
        f"{'dbt s/run':>11}  exactly once (headers; executions per worker)  target"
    )
    lines = [head]
    for r in results:
        verdict = f">= {throughput.TARGET:g} runs/s " + _met(r.runs_per_second >= throughput.TARGET)
        headers = ", ".join(
            f"{status} attempts={n}: {count}" for (status, n), count in r.headers.items()
        )
        lines.append(
            f"  {r.batch_size:>10}{r.requests:>10}{r.seconds:>9.2f}{r.runs_per_second:>8.1f}"
            f"{r.mean_batch:>12.1f}{r.dbt_seconds_per_run:>11.3f}  "
            f"{'yes' if r.exactly_once else 'NO'} ({headers}; {r.per_worker})  {verdict}"
        )
    if sampled is not None:
        compared = ", ".join(f"{t} {n:,} rows" for t, n in sampled.compared_rows.items())
        total = sampled.equal + len(sampled.differences)
        lines.append(
            f"  sampled runs equal to `runner run` with the same parameters: {sampled.equal} of"
            f" {total} ({compared} compared)"
        )
        lines += [f"    {d}" for d in sampled.differences]
    return lines


def latency_lines(results: list[Latency]) -> list[str]:
    lines = [
        f"  {'offered':>10}{'seconds':>9}{'requests':>10}{'p50':>8}{'p95':>8}{'p99':>8}"
        f"{'failed':>8}{'late submit':>13}{'queued p50':>12}{'dbt p50':>9}{'mean batch':>12}"
        "  target"
    ]
    for r in results:
        p95 = r.percentile(95)
        verdict = (
            f"p95 <= {latency.TARGET_P95:g} s " + _met(p95 <= latency.TARGET_P95)
            if r.rate == latency.TARGET_RATE
            else "-"
        )
        lines.append(
            f"  {r.rate:>6g}/s  {r.seconds:>9g}{len(r.latencies):>10}{r.percentile(50):>7.3f}s"
            f"{p95:>7.3f}s{r.percentile(99):>7.3f}s{r.failed:>8}{r.lag:>12.3f}s"
            f"{r.median(lambda e: e.queued_seconds):>11.3f}s{r.median(lambda e: e.dbt_seconds):>8.3f}s"
            f"{r.mean_batch:>12.1f}  {verdict}"
        )
    return lines


def worker_memory_lines(m: WorkerMemory) -> list[str]:
    met = _met(m.ratio <= worker_memory.TARGET)
    return [
        f"  after {m.runs[0]:,} runs {m.peak_mib[0]:.0f} MiB, after {m.runs[1]:,} runs"
        f" {m.peak_mib[1]:.0f} MiB: {m.ratio:.2f}x  target <= {worker_memory.TARGET:g}x {met}"
    ]


def breakdown_lines(name: str, b: Breakdown) -> list[str]:
    lines = [f"  {name}: {b.wall:.2f} s wall (with --verbose debug logging)"]
    for label, seconds in b.parts:
        lines.append(f"    {seconds:7.3f} s  {label}")
    lines.append("    SQL time by statement (threads overlap, so these can add up to more):")
    for label, seconds in sorted(b.sql.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.0005:
            lines.append(f"    {seconds:7.3f} s  {label}")
    if b.parse_note:
        lines.append(f"    parsing: {b.parse_note}")
    return lines


def render(r: Results) -> str:
    out = [r.title, "", "Machine", *[f"  {m}" for m in r.machine], "", "Set-up"]
    out += [f"  {s}" for s in r.setup]
    out += ["", "Medians of alternating pairs (fresh processes, wall clock)", *table(r.rows)]
    if r.throughput:
        out += [
            "",
            "8   Throughput: 2 warm workers, a queue filled before they start, per batch size",
        ]
        out += throughput_lines(r.throughput, r.sampled)
    if r.latency:
        out += [
            "",
            "9   Latency from submit to SUCCEEDED, 2 warm workers, open loop (nearest rank)",
        ]
        out += latency_lines(r.latency)
    if r.worker_memory is not None:
        out += ["", "12  A warm worker's peak RSS (VmHWM)", *worker_memory_lines(r.worker_memory)]
    mem = memory(r.rows)
    if mem:
        out += ["", "6   Memory (peak RSS of the runner process, os.wait4)", *mem]
    if r.levers:
        out += ["", "Levers", *[f"  {line}" for line in r.levers]]
    if r.imports:
        out += ["", "Imports (python -c 'import X' minus python -c 'pass', median)"]
        out += [f"  {seconds:6.3f} s  {name}" for name, seconds in r.imports.items()]
    if r.breakdowns:
        out += ["", "Where a runner run's time goes (dbt's JSON debug log, one extra run each)"]
        for name, b in r.breakdowns.items():
            out += breakdown_lines(name, b)
    if r.plans:
        out += ["", "Plans (EXPLAIN ANALYZE; files in the plans directory)"]
        for plan in r.plans:
            out.append(
                f"  {plan.tenant:<8}{plan.name:<44}{plan.execution_ms:>10.1f} ms  {plan.path.parent.name}/{plan.path.name}"
            )
            out.append(f"          {plan.signature()}")
    if r.notes:
        out += ["", "Notes", *[f"  {n}" for n in r.notes]]
    return "\n".join(out) + "\n"
