"""Two sides measured in alternation, and their medians.

Each pair runs both sides back to back, the order flipping from pair to pair, so that a drift
in the machine's load (other work on the same cores) weighs on both sides alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Timed(Protocol):
    """What one run of a side yields: a child process (bench/processes.py) or a request served
    by a warm worker (bench/warm_worker.py)."""

    @property
    def seconds(self) -> float: ...

    @property
    def max_rss_mib(self) -> float: ...


@dataclass(frozen=True)
class Side:
    label: str
    run: Callable[[], Timed]
    prepare: Callable[[], None] | None = None  # untimed, before every run (e.g. empty a table)

    def once(self) -> Timed:
        if self.prepare is not None:
            self.prepare()
        return self.run()


@dataclass
class Pairs:
    a: Side
    b: Side
    a_runs: list[Timed] = field(default_factory=list)
    b_runs: list[Timed] = field(default_factory=list)

    @property
    def a_median(self) -> float:
        return statistics.median(r.seconds for r in self.a_runs)

    @property
    def b_median(self) -> float:
        return statistics.median(r.seconds for r in self.b_runs)

    @property
    def ratio(self) -> float:
        return self.a_median / self.b_median

    @property
    def a_max_rss_mib(self) -> float:
        return max(r.max_rss_mib for r in self.a_runs)

    def spread(self, runs: list[Timed]) -> str:
        times = sorted(r.seconds for r in runs)
        return f"{times[0]:.2f}-{times[-1]:.2f}" if len(times) > 1 else f"{times[0]:.2f}"


def measure(a: Side, b: Side, pairs: int, warmups: int, say: Callable[[str], None]) -> Pairs:
    """`warmups` untimed runs of each side, then `pairs` timed pairs in alternating order."""
    for _ in range(warmups):
        a.once()
        b.once()
    result = Pairs(a, b)
    for index in range(pairs):
        order = ((a, result.a_runs), (b, result.b_runs))
        for side, runs in order if index % 2 == 0 else reversed(order):
            run = side.once()
            runs.append(run)
            say(f"    {side.label}: {run.seconds:.2f} s, peak RSS {run.max_rss_mib:.0f} MiB")
    return result
