"""SIGTERM handled like Ctrl-C, so a terminated run unwinds through the same path: dbt cancels
its queries and the runner marks the run FAILED."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. A KeyboardInterrupt, so dbt cancels its open queries as for Ctrl-C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interruption_reason(exc: BaseException) -> str:
    return "terminated by SIGTERM" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
