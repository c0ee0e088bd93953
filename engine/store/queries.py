"""Queries of the log, for auditors, replays and followers: filtered pages after a position
(`EventFilter`, `page`, `iterate`), one stream's events a page at a time (`stream_pages`,
`fold_stream`), and a few probes (`stream_exists`, `high_water`, `event_at`). Rows are decoded
leniently (engine.store.lenient_rows), and read the way the backend reads best
(engine.store.backends: on SQLite a page is read and decoded on its reader thread).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, overload

from sqlalchemy import ColumnElement, String, bindparam, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wingman.engine.events import RecordedEvent
from wingman.engine.store.backends import Backend, backend_of
from wingman.engine.store.backends.protocol import Params, Rows
from wingman.engine.store.lenient_rows import to_event, to_events
from wingman.engine.store.schema import events as E

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
PAGE = 1000  # rows per round trip when iterating

# Data and metadata come back as the stored text, parsed leniently (engine.store.lenient_rows).
_COLUMNS = (
    E.c.position,
    E.c.stream_id,
    E.c.version,
    E.c.event_id,
    E.c.type,
    type_coerce(E.c.data, String).label("data"),
    type_coerce(E.c.metadata, String).label("metadata"),
    type_coerce(E.c.recorded_at, String).label("recorded_at"),
    E.c.prev_hash,
    E.c.hash,
)


@dataclass
class EventFilter:
    """Which events an auditor wants. Empty fields do not filter; times are inclusive."""

    stream_id: str | None = None
    types: list[str] = field(default_factory=list)  # exact names, or a prefix ending in ".*"
    actor: str | None = None
    operation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    upto_position: int | None = None  # a high-water mark (verification reads a fixed log)

    def clauses(self, backend: Backend) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.stream_id is not None:
            out.append(E.c.stream_id == self.stream_id)
        if self.types:
            alts: list[ColumnElement[bool]] = []
            for t in self.types:
                if t.endswith(".*"):
                    alts.append(E.c.type.like(t[:-1].replace("%", r"\%").replace("_", r"\_") + "%", escape="\\"))
                else:
                    alts.append(E.c.type == t)
            out.append(or_(*alts))
        if self.actor is not None:
            out.append(backend.json_text(E.c.metadata, "actor") == self.actor)
        if self.operation_id is not None:
            out.append(
                or_(
                    backend.json_text(E.c.metadata, "operation_id") == self.operation_id,
                    backend.json_text(E.c.data, "operation_id") == self.operation_id,
                )
            )
        if self.since is not None:
            out.append(E.c.recorded_at >= self.since)
        if self.until is not None:
            out.append(E.c.recorded_at <= self.until)
        if self.upto_position is not None:
            out.append(E.c.position <= self.upto_position)
        return out

    def matches(self, ev: RecordedEvent) -> bool:
        """The same filter applied to an event in memory (a live event just committed), so a
        stream that switches from reading the log to following commits keeps one meaning."""
        if self.stream_id is not None and ev.stream_id != self.stream_id:
            return False
        if self.types and not any(ev.type.startswith(t[:-1]) if t.endswith(".*") else ev.type == t for t in self.types):
            return False
        meta = ev.metadata if isinstance(ev.metadata, dict) else {}
        data = ev.data if isinstance(ev.data, dict) else {}
        if self.actor is not None and meta.get("actor") != self.actor:
            return False
        if self.operation_id is not None and self.operation_id not in (
            meta.get("operation_id"),
            data.get("operation_id"),
        ):
            return False
        if self.since is not None and ev.recorded_at < self.since:
            return False
        if self.until is not None and ev.recorded_at > self.until:
            return False
        return self.upto_position is None or ev.position <= self.upto_position


# Where a server's page starts: after the version of the event its cursor names, when that is one
# of the server's own events (every `next_after` of a server's page is; one probe of the log's
# key), else after the server's last version at or before the cursor.
_VERSION_AT = select(E.c.version).where(E.c.position == bindparam("position"), E.c.stream_id == bindparam("stream_id"))
_LAST_VERSION_UPTO = select(func.max(E.c.version)).where(
    E.c.stream_id == bindparam("stream_id"), E.c.position <= bindparam("position")
)


async def page(
    engine: AsyncEngine, flt: EventFilter, after: int = 0, limit: int = DEFAULT_LIMIT
) -> tuple[list[RecordedEvent], int | None]:
    """Up to `limit` matching events after position `after`, and the `after` of the next page
    (None when this page is the last).

    The whole log comes in position order. One server's events come in their version order, read
    by the (stream_id, version) index the log keeps for its unique versions: for every stream the
    store wrote that is the log's order too (a stream's versions and positions rise together), so
    no second index per server has to be written on every commit. Verification of one server
    checks that the two orders still agree."""
    clauses = flt.clauses(backend_of(engine))
    async with engine.connect() as conn:
        if flt.stream_id is None:
            q = select(*_COLUMNS).where(E.c.position > after, *clauses).order_by(E.c.position)
        else:
            # A range of that index, never a position range: SQLite's planner would rather walk
            # another index (by type, say) from the position and sort what it finds.
            start = await _version_after(conn, flt.stream_id, after)
            q = select(*_COLUMNS).where(E.c.version > start, *clauses).order_by(E.c.version)
        rows = (await conn.execute(q.limit(limit))).all()
    events = [to_event(r) for r in rows]
    return events, (events[-1].position if len(events) == limit else None)


async def _version_after(conn: AsyncConnection, stream_id: str, after: int) -> int:
    if after <= 0:
        return 0
    params = {"position": after, "stream_id": stream_id}
    version = (await conn.execute(_VERSION_AT, params)).scalar()
    if version is None:
        version = (await conn.execute(_LAST_VERSION_UPTO, params)).scalar()
    return version or 0


async def iterate(
    engine: AsyncEngine, flt: EventFilter | None = None, after: int = 0, page_size: int = PAGE
) -> AsyncIterator[RecordedEvent]:
    """Every matching event in `page`'s order, a page at a time (flat memory over any log)."""
    flt = flt or EventFilter()
    while True:
        batch, nxt = await page(engine, flt, after, page_size)
        for ev in batch:
            yield ev
        if nxt is None:
            return
        after = nxt


async def stream_versions(
    engine: AsyncEngine, stream_id: str, after_version: int, page_size: int = PAGE
) -> AsyncIterator[RecordedEvent]:
    """One stream's events in version order from `after_version` + 1 (for replays)."""
    async for events in stream_pages(engine, stream_id, after_version, page_size):
        for ev in events:
            yield ev


# Built once: on SQLite each page is then the same compiled statement (its reader thread prepares it once).
_STREAM_PAGE = (
    select(*_COLUMNS)
    .where(E.c.stream_id == bindparam("stream_id"), E.c.version > bindparam("after_version"))
    .order_by(E.c.version)
    .limit(bindparam("page_size"))
)


class Versioned(Protocol):
    """What a page of one stream is made of, as far as paging goes: RecordedEvents, EventRows."""

    @property
    def version(self) -> int: ...


_V = TypeVar("_V", bound=Versioned)


@overload
def stream_pages(
    engine: AsyncEngine, stream_id: str, after_version: int, page_size: int = PAGE
) -> AsyncIterator[list[RecordedEvent]]: ...


@overload
def stream_pages(
    engine: AsyncEngine, stream_id: str, after_version: int, page_size: int, convert: Callable[[Rows], list[_V]]
) -> AsyncIterator[list[_V]]: ...


@overload
def stream_pages(
    engine: AsyncEngine, stream_id: str, after_version: int, *, convert: Callable[[Rows], list[_V]]
) -> AsyncIterator[list[_V]]: ...


async def stream_pages(
    engine: AsyncEngine,
    stream_id: str,
    after_version: int,
    page_size: int = PAGE,
    convert: Callable[[Rows], list[Any]] = to_events,
) -> AsyncIterator[list[Any]]:
    """The same events a page at a time, each page `convert`ed from rows (`to_rows`: EventRows,
    for a fold that keeps none of them). A caller that iterates pages pays no step of an async
    generator per event, and on SQLite a page is read and converted in one hand-off (its reader
    thread)."""
    backend = backend_of(engine)
    while True:
        params = {"stream_id": stream_id, "after_version": after_version, "page_size": page_size}
        events = await backend.read(engine, _STREAM_PAGE, convert, params)
        yield events
        if len(events) < page_size:
            return
        after_version = events[-1].version


def fold_stream(
    engine: AsyncEngine,
    stream_id: str,
    after_version: int,
    page_size: int,
    convert: Callable[[Rows], list[_V]],
    take: Callable[[list[_V]], None],
) -> Awaitable[None]:
    """`stream_pages` for a fold: each page goes to `take` where it is read, on SQLite the
    reader's thread (see Backend.walk). An error `take` raises ends the walk and reaches
    whoever awaits it."""

    def next_page(events: list[_V]) -> Params | None:
        take(events)
        if len(events) < page_size:
            return None
        return {"stream_id": stream_id, "after_version": events[-1].version, "page_size": page_size}

    return backend_of(engine).walk(
        engine,
        _STREAM_PAGE,
        {"stream_id": stream_id, "after_version": after_version, "page_size": page_size},
        convert,
        next_page,
    )


async def stream_exists(engine: AsyncEngine, stream_id: str) -> bool:
    q = select(E.c.position).where(E.c.stream_id == stream_id).limit(1)
    async with engine.connect() as conn:
        return (await conn.execute(q)).first() is not None


async def high_water(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        # The table's columns are untyped to SQLAlchemy (a Core Table): the position is an integer.
        position: int = (await conn.execute(select(func.coalesce(func.max(E.c.position), 0)))).scalar_one()
    return position


async def event_at(engine: AsyncEngine, stream_id: str, version: int) -> RecordedEvent | None:
    q = select(*_COLUMNS).where(E.c.stream_id == stream_id, E.c.version == version)
    async with engine.connect() as conn:
        row = (await conn.execute(q)).first()
    return to_event(row) if row is not None else None
