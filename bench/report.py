"""The benchmark's printout: the machine, the table of medians against the targets, the fixed
cost and where a run's time goes, memory, and the plans compared."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.breakdown import Breakdown
from bench.plans import Plan
from bench.scenarios import Row


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


def _verdict(row: Row) -> str:
    if row.target is None:
        return "-"
    return f"<= {row.target:.1f}x " + ("met" if row.met else "MISSED")


def table(rows: list[Row]) -> list[str]:
    head = f"{'#':<4}{'measurement':<52}{'side A':>10}{'side B':>10}{'A/B':>8}  target"
    lines = [head, "-" * len(head)]
    for row in rows:
        p = row.pairs
        lines.append(
            f"{row.key:<4}{row.title:<52}{p.a_median:>9.2f}s{p.b_median:>9.2f}s"
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
