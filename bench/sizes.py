"""What the benchmark generates and how much it repeats: the full size and CI's smoke size."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from crm_data.generator import DEFAULT_AS_OF, DatasetSpec

# Bump when what bench/dataset.py puts into a database changes, so old databases are rebuilt.
DATA_FORMAT = 2


@dataclass(frozen=True)
class QueueLoad:
    """How much the warm-worker measurements ask of the queue."""

    requests: int  # queued before the workers start, per batch size tried
    batch_sizes: tuple[int, ...]  # tried side by side for throughput
    sampled: int  # runs of the throughput queue compared with `runner run`
    rates: tuple[float, ...]  # offered loads for latency, requests per second
    seconds_per_rate: float  # how long each load is offered
    rss_after: tuple[int, int]  # a worker's peak RSS is read after this many runs, then this many


@dataclass(frozen=True)
class BenchSize:
    name: str
    # The big database holds `crowd` (one big tenant and its neighbours), `small` (a tenant
    # generated on its own: loaded alone into a database of its own it yields the same rows) and
    # `queue_tenants`, the small tenants the queue measurements spread their requests over. All
    # three are kept by a healthy team (DatasetSpec.healthy) as of the day they are built.
    crowd: DatasetSpec
    small: DatasetSpec
    queue_tenants: DatasetSpec
    history_runs: int  # earlier runs synthesized into the history database
    pairs: int  # default --pairs
    queue: QueueLoad

    @property
    def worst(self) -> DatasetSpec:
        """The crowd as the benchmark measured it before 2026-12: nobody closes a stalled deal,
        and the data's "now" is fixed long ago, so nearly every open deal is at risk."""
        return replace(self.crowd, healthy=False, as_of=DEFAULT_AS_OF)

    def dated(self, as_of: datetime) -> BenchSize:
        """The healthy datasets as of `as_of`: their share at risk holds only near their "now"."""
        return replace(
            self,
            crowd=replace(self.crowd, as_of=as_of),
            small=replace(self.small, as_of=as_of),
            queue_tenants=replace(self.queue_tenants, as_of=as_of),
        )

    def specs(self, part: str) -> list[DatasetSpec]:
        """The datasets of a database built for `part` ("big", "small", "history", "worst"), in
        the order they are loaded."""
        return {
            "big": [self.crowd, self.small, self.queue_tenants],
            "small": [self.small],
            "history": [self.small],
            "worst": [self.worst],
        }[part]

    def record(self, part: str) -> dict[str, Any]:
        """What a database built for `part` is recorded with."""
        document: dict[str, Any] = {
            "format": DATA_FORMAT,
            "part": part,
            "specs": [_spec_json(s) for s in self.specs(part)],
        }
        if part == "history":
            document["history_runs"] = self.history_runs
        return document


def _spec_json(spec: DatasetSpec) -> dict[str, Any]:
    """The spec as its record in the database reads back: tuples as lists, instants as text."""
    document: dict[str, Any] = json.loads(json.dumps(asdict(spec), default=datetime.isoformat))
    return document


FULL = BenchSize(
    name="full",
    # 998,000 deals over 19 tenants, the first exactly 300,000; the rest 11k to 62k each.
    crowd=DatasetSpec(
        deals=998_000, seed=1, tenants=19, big_tenant_share=300_000 / 998_000, healthy=True
    ),
    small=DatasetSpec(deals=2_000, seed=2, tenants=1, healthy=True),
    queue_tenants=DatasetSpec(
        deals=600_000, seed=3, tenants=200, deals_per_tenant=(1_000, 5_000), healthy=True
    ),
    history_runs=10_000,
    pairs=3,
    queue=QueueLoad(
        requests=1_000,
        batch_sizes=(1, 10, 25, 50),
        sampled=20,
        rates=(1, 10, 30),
        seconds_per_rate=30,
        rss_after=(100, 10_000),
    ),
)

SMOKE = BenchSize(
    name="smoke",
    crowd=DatasetSpec(deals=2_500, seed=1, tenants=2, big_tenant_share=0.6, healthy=True),
    small=DatasetSpec(deals=500, seed=2, tenants=1, healthy=True),
    queue_tenants=DatasetSpec(
        deals=1_000, seed=3, tenants=5, deals_per_tenant=(100, 300), healthy=True
    ),
    history_runs=50,
    pairs=1,
    queue=QueueLoad(
        requests=40,
        batch_sizes=(20,),  # one size exercises batching; each more starts two more workers
        sampled=1,  # a fresh `runner run` each
        rates=(1, 10, 30),
        seconds_per_rate=2,
        rss_after=(10, 50),
    ),
)
