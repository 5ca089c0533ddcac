"""Warm workers (`python -m runner worker`) as child processes of the benchmark: started in the
runner's project, each logging to a file of its own, read back for what they executed and for
their peak resident memory."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from bench.sides import Sides

START_SECONDS = 180  # two workers importing dbt and parsing the project on two busy cores
# The line a worker logs per finished run (runner/usecases/worker.py).
FINISHED = re.compile(
    r"worker \S+: run (?P<run_id>[0-9a-f-]{36}) tenant \S+ (?P<status>SUCCEEDED|FAILED)"
    r".* attempt=(?P<attempt>\d+) queued=(?P<queued>[\d.]+)s dbt=(?P<dbt>[\d.]+)s total=[\d.]+s"
    r"(?: batch=(?P<batch>\d+))?$"
)


@dataclass(frozen=True)
class Execution:
    """One finished run as its worker logged it."""

    run_id: UUID
    status: str
    attempt: int
    queued_seconds: float  # from its submit to its claim
    dbt_seconds: float  # of the invocation that computed it, shared by its batch
    batch: int


@dataclass(frozen=True)
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def executions(self) -> list[Execution]:
        return [
            Execution(
                UUID(m["run_id"]),
                m["status"],
                int(m["attempt"]),
                float(m["queued"]),
                float(m["dbt"]),
                int(m["batch"] or 1),
            )
            for line in self.log.read_text().splitlines()
            if (m := FINISHED.search(line))
        ]

    def peak_rss_mib(self) -> float:
        """VmHWM: the most resident memory the worker has held since it started."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
        raise RuntimeError(f"no VmHWM for worker {self.process.pid}")


@contextmanager
def workers(
    sides: Sides, database: str, count: int, logs: Path, *options: str
) -> Iterator[list[WorkerProcess]]:
    """`count` workers on `database`, each with `options` (e.g. --batch-size 25) and its log in
    the directory `logs`, once every one has loaded dbt; stopped with SIGTERM (each finishes the
    batch in hand) on the way out, their logs kept."""
    logs.mkdir(parents=True, exist_ok=True)
    started: list[WorkerProcess] = []
    try:
        for index in range(count):
            log = logs / f"worker-{index}.log"
            with log.open("w") as stderr:
                process = subprocess.Popen(
                    [sides.python, "-m", "runner", "worker", "--poll-seconds", "1", *options],
                    cwd=sides.runner_project,
                    env=sides.env(database),
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            started.append(WorkerProcess(process, log))
        _wait_loaded(started)
        yield started
    finally:
        for worker in started:
            worker.process.terminate()
        for worker in started:
            worker.process.wait(timeout=START_SECONDS)


def _wait_loaded(started: list[WorkerProcess]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not all("dbt loaded" in w.log.read_text() for w in started):
        for worker in started:
            if worker.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"worker {worker.process.pid} did not start: {worker.log.read_text()[-800:]}"
                )
        time.sleep(0.1)
