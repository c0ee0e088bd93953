"""What the metrics count, from the log: nothing is lost by a restart.

The counters (operations by action and outcome, crashes by server, crash-policy decisions,
restarts by cause, events appended) are the log's own numbers. At start the whole log is summed,
with one grouped query per family up to the log's last position; from then on each committed
group is counted as the store announces it (a subscriber: a few dictionary updates per event, no
read back from the database). So a counter is the same after a daemon restart as before it, and
Prometheus' `rate()` across a restart is right; and a scrape only formats what is counted, so
scraping costs the node next to nothing however busy it is.

The histograms (an operation's time from request to outcome, its wait for the power lock) come
from the same events, for the operations requested since this daemon started: their pairs of
events (`power.requested`, then `power.started` and the outcome) are seen together. They start
empty at each daemon start, as any Prometheus histogram does at a restart.

Events committed while the start's sum is read are held, and counted after it only if it did
not already count them (by position): each event is counted once.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.event_types import EventType
from wingman.engine.events import RecordedEvent
from wingman.engine.store.schema import events as E

# Keyed by the stored type's text (an EventType is that text, as a StrEnum).
OUTCOMES: dict[str, str] = {
    EventType.POWER_SUCCEEDED: "succeeded",
    EventType.POWER_FAILED: "failed",
    EventType.POWER_REJECTED: "rejected",
    EventType.POWER_CANCELLED: "cancelled",
    EventType.POWER_INTERRUPTED: "interrupted",
}
READ = [
    EventType.POWER_REQUESTED,
    EventType.POWER_STARTED,
    *OUTCOMES,
    EventType.SERVER_CRASHED,
    EventType.CRASH_DECIDED,
]
_COUNTED = frozenset(READ)  # the types a committed event is looked at for, beyond counting it
# Operations waiting for their outcome, for the histograms. An operation whose outcome never
# comes (the daemon died; the next boot records `interrupted`) is forgotten past this many.
OPEN_OPERATIONS = 100_000

# Seconds. An operation ends in milliseconds (a kill) to minutes (a stop of a big server).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
LOCK_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300)


@dataclass
class Buckets:
    """A histogram's cumulative buckets, its count and its sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    observed: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, seconds: float) -> None:
        self.observed += 1
        self.total += seconds
        for i, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[i] += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, count) pairs as Prometheus wants them, +Inf last."""
        return [
            *((repr(float(b)), float(c)) for b, c in zip(self.bounds, self.counts, strict=True)),
            ("+Inf", self.observed),
        ]


@dataclass
class _Open:
    action: str
    requested_at: datetime


class LogCounts:
    """The counters and histograms: summed from the log by `prime`, then counted as the store commits."""

    def __init__(self, db: AsyncEngine, node_id: str | None = None) -> None:
        self.db = db
        # In a fleet's shared database, this node's events only (and those from before node ids,
        # which only a node's own history holds: docs/fleet.md).
        self._mine = or_(E.c.node_id == node_id, E.c.node_id.is_(None)) if node_id else true()
        self.position = 0  # every event up to here is counted
        self.primed = False
        self.events = 0
        self.operations: Counter[tuple[str, str]] = Counter()  # (action, outcome)
        self.crashes: Counter[str] = Counter()  # by server
        self.decisions: Counter[str] = Counter()  # restart | stay_down
        self.restarts: Counter[str] = Counter()  # by the request's cause
        self.durations: dict[str, Buckets] = {}  # by action
        self.lock_waits = Buckets(LOCK_WAIT_BUCKETS)
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._lock = asyncio.Lock()
        self._held: list[RecordedEvent] = []
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, subscribe: Callable[[Callable[[list[RecordedEvent]], None]], Callable[[], None]]) -> None:
        """Count each committed group from now on (before `prime`, so that nothing falls between)."""
        self._unsubscribe = subscribe(self._on_commit)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def prime(self) -> None:
        """Sum the log as it is now (once); then count what was held meanwhile."""
        async with self._lock:
            if self.primed:
                return
            async with self.db.connect() as conn:
                total, last = (
                    await conn.execute(select(func.count().filter(self._mine), func.max(E.c.position)))
                ).one()
            if last is not None:
                await self._prime(last)
                self.events += total
                self.position = last
            self.primed = True
            held, self._held = self._held, []
            self._on_commit(held)

    def _on_commit(self, events: list[RecordedEvent]) -> None:
        if not self.primed:
            self._held.extend(events)  # until the start's sum is read
            return
        for ev in events:
            if ev.position <= self.position:
                continue  # the start's sum has it
            self.events += 1
            if ev.type in _COUNTED:
                self._count(ev)
        if events:
            self.position = max(self.position, events[-1].position)

    async def _prime(self, upto: int) -> None:
        """The whole log up to `upto`, summed in the database."""
        action = E.c.data["action"].as_string()
        window = and_(E.c.position <= upto, self._mine)
        async with self.db.connect() as conn:
            outcomes = select(E.c.type, action, func.count()).where(window, E.c.type.in_(list(OUTCOMES)))
            for kind, act, n in (await conn.execute(outcomes.group_by(E.c.type, action))).all():
                self.operations[act or "unknown", OUTCOMES[kind]] += n
            crashes = select(E.c.stream_id, func.count()).where(window, E.c.type == EventType.SERVER_CRASHED)
            for server, n in (await conn.execute(crashes.group_by(E.c.stream_id))).all():
                self.crashes[server] += n
            restart = E.c.data["restart"].as_boolean()
            decided = select(restart, func.count()).where(window, E.c.type == EventType.CRASH_DECIDED)
            for chose, n in (await conn.execute(decided.group_by(restart))).all():
                self.decisions[_decision(bool(chose))] += n
            cause = E.c.metadata["cause"].as_string()
            restarts = select(cause, func.count()).where(
                window, E.c.type == EventType.POWER_REQUESTED, action == "restart"
            )
            for why, n in (await conn.execute(restarts.group_by(cause))).all():
                self.restarts[why or "unknown"] += n

    def _count(self, ev: RecordedEvent) -> None:
        kind, data = ev.type, ev.data
        if kind == EventType.POWER_REQUESTED:
            action = str(data.get("action"))
            self._open[str(data.get("operation_id"))] = _Open(action, ev.recorded_at)
            if len(self._open) > OPEN_OPERATIONS:
                self._open.popitem(last=False)
            if action == "restart":
                self.restarts[str(ev.metadata.get("cause") or "unknown")] += 1
        elif kind == EventType.POWER_STARTED:
            opened = self._open.get(str(data.get("operation_id")))
            if opened is not None:
                self.lock_waits.observe(_seconds(opened.requested_at, ev.recorded_at))
        elif kind in OUTCOMES:
            action = str(data.get("action"))
            self.operations[action, OUTCOMES[kind]] += 1
            opened = self._open.pop(str(data.get("operation_id")), None)
            if opened is not None:
                buckets = self.durations.setdefault(action, Buckets(DURATION_BUCKETS))
                buckets.observe(_seconds(opened.requested_at, ev.recorded_at))
        elif kind == EventType.SERVER_CRASHED:
            self.crashes[ev.stream_id] += 1
        elif kind == EventType.CRASH_DECIDED:
            self.decisions[_decision(bool(data.get("restart")))] += 1


def _decision(restart: bool) -> str:
    return "restart" if restart else "stay_down"


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())
