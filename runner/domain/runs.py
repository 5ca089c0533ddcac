"""Report runs: their statuses, what a caller asks for, and how a run ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from runner.domain.params import ReportParams
from runner.domain.timeouts import Timeouts
from runner.domain.vocabulary import DEFAULT_SOURCE_SCHEMA


class RunStatus(enum.StrEnum):
    """A header's status; the macro deal_aging_run_statuses lists the same (test_vocabulary)."""

    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


# The statuses a run ends in.
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED)
REPORT_TYPE = "deal_aging"

# The tables holding a run's rows under its run_id (the dbt macro deal_aging_run_keyed_tables).
RUN_KEYED_TABLES = ("report_deal_aging_fact", "report_deal_aging_deal", "report_deal_aging_change")

# A request whose worker died this many times ends FAILED instead of queueing again.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class RunRequest:
    tenant_id: UUID
    params: ReportParams
    run_id: UUID = field(default_factory=uuid4)
    source_schema: str = DEFAULT_SOURCE_SCHEMA
    # Recorded in the header for a worker to apply; None: the executor's own.
    timeouts: Timeouts | None = None

    def input_params(self) -> dict[str, Any]:
        """The header's input_params: the run's parameters and where they were computed from."""
        recorded = self.params.input_params() | {"source_schema": self.source_schema}
        return recorded | (self.timeouts.as_params() if self.timeouts else {})


@dataclass(frozen=True)
class RunResult:
    run_id: UUID
    tenant_id: UUID
    generated_at: datetime
    input_params: dict[str, Any]
    status: str
    error_message: str | None
    fact_rows: int
    timings: dict[str, float]

    @property
    def succeeded(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id),
            "status": self.status,
            "tenant_id": str(self.tenant_id),
            "generated_at": self.generated_at.isoformat(),
            "parameters": self.input_params,
            "fact_rows": self.fact_rows,
            "error_message": self.error_message,
            "timings": self.timings,
        }
