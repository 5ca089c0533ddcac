"""One child process, timed from start to exit, with its own peak resident memory.

The child's output goes to temporary files rather than pipes, so that this process can reap the
child itself with os.wait4, which returns the child's own rusage (ru_maxrss: its peak RSS) rather
than the running maximum over all children that RUSAGE_CHILDREN gives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChildRun:
    argv: tuple[str, ...]
    started_at: float  # time.time() when the child was started, to line up with its logs
    seconds: float  # wall clock, start to exit
    max_rss_mib: float
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> ChildRun:
        if self.returncode != 0:
            raise ChildFailed(self)
        return self


class ChildFailed(Exception):
    def __init__(self, run: ChildRun) -> None:
        tail = "\n".join(run.stderr.strip().splitlines()[-15:])
        super().__init__(f"{' '.join(run.argv)} exited {run.returncode}:\n{tail}")
        self.run = run


def run_child(
    argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 1800
) -> ChildRun:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started_at = time.time()
        started = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        killer = threading.Timer(timeout, _kill, (child.pid,))
        killer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return ChildRun(
            argv=tuple(argv),
            started_at=started_at,
            seconds=seconds,
            max_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
            returncode=child.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
