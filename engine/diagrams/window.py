"""What one server went through in a time window, read from its events: how many times it took
each transition, which states it was in, where it was at the window's end, and its state
intervals (for a timeline).

It reads the audit's timeline (engine.audit.timeline: the daemon's own fold over the stream), so
a diagram says exactly what replay and verification say. Times are inclusive, like the audit's
`since`/`until` filters: a change recorded at `until` is in the window.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.audit.timeline import Interval, timeline
from wingman.engine.diagrams.formats import BadDiagramRequest
from wingman.engine.store.points import iso


@dataclass(frozen=True)
class Window:
    since: datetime | None = None  # None: from the server's first event
    until: datetime | None = None  # None: up to now

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise BadDiagramRequest(f"since ({iso(self.since)}) is after until ({iso(self.until)})")

    def holds(self, ts: datetime) -> bool:
        return (self.since is None or ts >= self.since) and (self.until is None or ts <= self.until)

    def describe(self) -> str:
        start = iso(self.since) if self.since else "its first event"
        return f"from {start} to {iso(self.until) if self.until else 'now'}"


@dataclass
class Passage:
    """A server's passage through the statechart in a window."""

    server: str
    window: Window
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (source, trigger, dest) -> times taken
    visited: set[str] = field(default_factory=set)  # states it was in at some moment of the window
    final_state: str | None = None  # where it was at the window's end; None: deleted or not there yet
    deleted: bool = False  # it was deleted within the window and not registered again
    intervals: list[Interval] = field(default_factory=list)  # the state intervals that overlap the window
    intervals_total: int = 0  # how many overlap it (more than `intervals` holds when capped)

    @property
    def changes(self) -> int:
        return sum(self.counts.values())


async def passage(engine: AsyncEngine, server: str, window: Window, keep_intervals: int = 0) -> Passage:
    """Read `server`'s passage through `window`, keeping at most `keep_intervals` intervals.
    Raises UnknownStream for a server the log does not know, LogError when it cannot be replayed."""
    out = Passage(server, window)
    previous: Interval | None = None
    last: Interval | None = None
    async for iv in timeline(engine, server):
        if window.until is not None and iv.start > window.until:
            break  # intervals come in order: everything from here on is after the window
        # The change that ended the previous interval led into this one (a state change ends one
        # interval and starts the next at the same instant; a deletion starts none).
        ended = previous.ended_by if previous else None
        if previous and ended and ended.get("trigger") and previous.end and window.holds(previous.end):
            out.counts[(previous.state, ended["trigger"], iv.state)] += 1
        if iv.end is None or window.since is None or iv.end >= window.since:
            out.visited.add(iv.state)
            out.intervals_total += 1
            if len(out.intervals) < keep_intervals:
                out.intervals.append(iv)
            last = iv
        previous = iv
    if last is not None:
        out.deleted = last.end is not None and (window.until is None or last.end <= window.until)
        out.final_state = None if out.deleted else last.state
    return out
