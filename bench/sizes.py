"""What the benchmark generates and how much it repeats: the full size and CI's smoke size."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from crm_data.generator import DatasetSpec

# Bump when what bench/dataset.py puts into a database changes, so old databases are rebuilt.
DATA_FORMAT = 1


@dataclass(frozen=True)
class BenchSize:
    name: str
    # The big database holds `crowd` (one big tenant and its neighbours) plus `small`, a tenant
    # generated on its own: loaded alone into a database of its own it yields the same rows.
    crowd: DatasetSpec
    small: DatasetSpec
    history_runs: int  # earlier runs synthesized into the history database
    pairs: int  # default --pairs

    @property
    def deals(self) -> int:
        return self.crowd.deals + self.small.deals

    @property
    def tenants(self) -> int:
        return self.crowd.tenants + self.small.tenants

    def record(self, part: str) -> dict[str, Any]:
        """What a database built for `part` ("big", "small", "history") is recorded with."""
        specs = {"big": [self.crowd, self.small], "small": [self.small]}
        document: dict[str, Any] = {
            "format": DATA_FORMAT,
            "part": part,
            "specs": [_spec_json(s) for s in specs.get(part, [self.small])],
        }
        if part == "history":
            document["history_runs"] = self.history_runs
        return document


def _spec_json(spec: DatasetSpec) -> dict[str, Any]:
    document = asdict(spec)
    document["as_of"] = spec.as_of.isoformat()
    return document


FULL = BenchSize(
    name="full",
    # 998,000 deals over 19 tenants, the first exactly 300,000; the rest 11k to 62k each.
    crowd=DatasetSpec(deals=998_000, seed=1, tenants=19, big_tenant_share=300_000 / 998_000),
    small=DatasetSpec(deals=2_000, seed=2, tenants=1),
    history_runs=10_000,
    pairs=3,
)

SMOKE = BenchSize(
    name="smoke",
    crowd=DatasetSpec(deals=2_500, seed=1, tenants=2, big_tenant_share=0.6),
    small=DatasetSpec(deals=500, seed=2, tenants=1),
    history_runs=50,
    pairs=1,
)
