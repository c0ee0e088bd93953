"""What the metrics count, read from the log: nothing is counted on the write path, and nothing
is lost by a restart.

The counters (operations by action and outcome, crashes by server, crash-policy decisions, restarts by
cause, events appended) are the log's own numbers: the first reading sums the whole log with one
grouped query per family, up to the log's last position; each later reading (a scrape) adds the
events after the position the last one reached. So a counter is the same after a daemon restart
as before it, and Prometheus' `rate()` across a restart is right.

The histograms (an operation's time from request to outcome, its wait for the power lock) come
from the same reads, for the operations requested since this daemon started: their pairs of
events (`power.requested`, then `power.started` and the outcome) are seen together. They start
empty at each daemon start, as any Prometheus histogram does at a restart.

One reader at a time (an asyncio lock): two scrapes at once do not count an event twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, String, and_, func, or_, select, true, type_coerce
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.event_types import EventType
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
# What a later reading takes of each event: the fields counted, extracted by the database.
_FIELDS = (
    E.c.position,
    E.c.stream_id,
    E.c.type,
    type_coerce(E.c.recorded_at, String).label("recorded_at"),
    E.c.data["action"].as_string().label("action"),
    E.c.data["operation_id"].as_string().label("operation_id"),
    E.c.data["restart"].as_string().label("restart"),
    E.c.metadata["cause"].as_string().label("cause"),
)
PAGE = 1000
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
    """The counters and histograms, brought up to date by `catch_up` (once per scrape)."""

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

    async def catch_up(self) -> None:
        async with self._lock:
            async with self.db.connect() as conn:
                total, last = (
                    await conn.execute(
                        select(func.count().filter(self._mine), func.max(E.c.position)).where(
                            E.c.position > self.position
                        )
                    )
                ).one()
            if last is None:
                return
            if not self.primed:
                await self._prime(last)
            else:
                await self._read(last)
            self.events += total
            self.position = last
            self.primed = True

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

    async def _read(self, upto: int) -> None:
        """The events after the last reading, up to `upto`, a page at a time. The database hands
        over the few fields counted (no event is parsed here): a scrape costs the event loop
        little while the node is busy."""
        after = self.position
        while after < upto:
            query = (
                select(*_FIELDS)
                .where(E.c.position > after, E.c.position <= upto, E.c.type.in_(READ), self._mine)
                .order_by(E.c.position)
                .limit(PAGE)
            )
            async with self.db.connect() as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                self._count(row)
            if len(rows) < PAGE:
                return
            after = rows[-1].position

    def _count(self, row: Row[Any]) -> None:
        kind = row.type
        if kind == EventType.POWER_REQUESTED:
            action = str(row.action)
            self._open[str(row.operation_id)] = _Open(action, _when(row.recorded_at))
            if len(self._open) > OPEN_OPERATIONS:
                self._open.popitem(last=False)
            if action == "restart":
                self.restarts[str(row.cause or "unknown")] += 1
        elif kind == EventType.POWER_STARTED:
            opened = self._open.get(str(row.operation_id))
            if opened is not None:
                self.lock_waits.observe(_seconds(opened.requested_at, _when(row.recorded_at)))
        elif kind in OUTCOMES:
            action = str(row.action)
            self.operations[action, OUTCOMES[kind]] += 1
            opened = self._open.pop(str(row.operation_id), None)
            if opened is not None:
                buckets = self.durations.setdefault(action, Buckets(DURATION_BUCKETS))
                buckets.observe(_seconds(opened.requested_at, _when(row.recorded_at)))
        elif kind == EventType.SERVER_CRASHED:
            self.crashes[row.stream_id] += 1
        elif kind == EventType.CRASH_DECIDED:
            self.decisions[_decision(_truthy(row.restart))] += 1


def _decision(restart: bool) -> str:
    return "restart" if restart else "stay_down"


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def _when(value: datetime | str) -> datetime:
    """A row's `recorded_at`: a datetime from PostgreSQL, the stored text from SQLite."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _truthy(value: object) -> bool:
    # JSON's true as each database extracts it: True, 1, or the text "true".
    return value in (True, 1, "true", "1")
