"""The time a scheduler reads and waits on, injected: the system's clock in service, another in
tests (or a demo), so that a test drives a schedule's time without waiting for it.

`FileClock` reads the time from a file (ISO 8601), looked at every 50 ms: what
`WINGMAN_SCHEDULE_CLOCK_FILE` names, for tests of a real daemon process. Never set in service."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

CLOCK_FILE_VARIABLE = "WINGMAN_SCHEDULE_CLOCK_FILE"
LONGEST_SLEEP = 60.0  # seconds: the system's clock may be set meanwhile (NTP, an operator)
FILE_POLL = 0.05


class Clock(Protocol):
    def now(self) -> datetime:
        """The time now (aware)."""
        ...

    async def wait(self, until: datetime, wake: asyncio.Event) -> None:
        """Return at `until`, when `wake` is set, or earlier (the caller asks `now` again)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def wait(self, until: datetime, wake: asyncio.Event) -> None:
        seconds = min(max((until - self.now()).total_seconds(), 0.0), LONGEST_SLEEP)
        try:
            await asyncio.wait_for(wake.wait(), timeout=seconds)
        except TimeoutError:
            pass


class FileClock:
    """The time written in a file; the system's while the file is absent or unreadable."""

    def __init__(self, path: Path):
        self.path = path

    def now(self) -> datetime:
        try:
            moment = datetime.fromisoformat(self.path.read_text().strip())
        except (OSError, ValueError):
            return datetime.now(UTC)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    async def wait(self, until: datetime, wake: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(wake.wait(), timeout=FILE_POLL)
        except TimeoutError:
            pass


def clock_from_environment() -> Clock:
    path = os.environ.get(CLOCK_FILE_VARIABLE)
    return FileClock(Path(path)) if path else SystemClock()
