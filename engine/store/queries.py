"""Reading the log for an auditor: filtered pages after a position, and a lenient row reader.

The reader does not trust the database to hold what the store wrote: a row whose JSON or time was
edited by hand is still returned (with the raw text in place of the value) so that verification
can name it, and export can carry it, instead of the whole read failing.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from pydantic_core import from_json as _from_json  # json_loads' parser, without its fallback (see to_rows)
from sqlalchemy import String, bindparam, case, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from engine.events import RecordedEvent
from engine.store.hashing import json_loads
from engine.store.log_reader import read, walk
from engine.store.schema import events as E

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
PAGE = 1000  # rows per round trip when iterating

# Data and metadata come back as the stored text, parsed here (see module doc).
_COLUMNS = (
    E.c.position, E.c.stream_id, E.c.version, E.c.event_id, E.c.type,
    type_coerce(E.c.data, String).label("data"), type_coerce(E.c.metadata, String).label("metadata"),
    type_coerce(E.c.recorded_at, String).label("recorded_at"), E.c.prev_hash, E.c.hash,
)


def _json(raw):
    if raw is None or isinstance(raw, (dict, list)):
        return raw
    try:
        return json_loads(raw)
    except (TypeError, ValueError):
        return raw  # kept as text: verification reports it


_STORED_TIME_LENGTH = len("2026-01-01 00:00:00.000000")  # how SQLite holds a time: naive UTC
_from_iso = datetime.fromisoformat


def _time(raw):
    if type(raw) is str and len(raw) == _STORED_TIME_LENGTH:
        # The spelling the store writes, parsed as UTC in one call (a parse then a replace costs
        # several times this). A text that already carries an offset fails here and is read below.
        try:
            return _from_iso(raw + "+00:00")
        except ValueError:
            pass
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)
    try:
        ts = datetime.fromisoformat(str(raw))
    except ValueError:
        return raw  # kept as text: verification reports it
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def to_event(row) -> RecordedEvent:
    """A row as a RecordedEvent without validation (the reader must not reject a tampered row)."""
    position, stream_id, version, event_id, type_, data, metadata, recorded_at, prev_hash, hash_ = row
    return RecordedEvent.trusted(
        position=position, stream_id=stream_id, version=version, event_id=event_id, type=type_,
        data=_json(data), metadata=_json(metadata), recorded_at=_time(recorded_at), prev_hash=prev_hash,
        hash=hash_,
    )


def to_events(rows) -> list[RecordedEvent]:
    return [to_event(r) for r in rows]


class EventRow(NamedTuple):
    """A row decoded as `to_event` decodes it, without the pydantic model around it: a replay
    reads a million of them, and making the model costs five times a tuple. It reads like a
    RecordedEvent (the same field names) and becomes one for whoever keeps it (`recorded`)."""

    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    data: Any
    metadata: Any
    recorded_at: Any
    prev_hash: str
    hash: str

    def recorded(self) -> RecordedEvent:
        return RecordedEvent.trusted(**self._asdict())


_row = tuple.__new__


def to_rows(rows) -> list[EventRow]:
    # `_json` and `_time` spelled out for the rows the store writes (JSON text, the stored time
    # spelling): a replay converts a million rows, and the three calls a row were a sixth of the
    # conversion. Anything else (an edited row, a driver that hands back values) takes them.
    out = []
    append = out.append
    for position, stream_id, version, event_id, type_, data, metadata, recorded_at, prev_hash, hash_ in rows:
        try:
            data, metadata = _from_json(data), _from_json(metadata)
        except (ValueError, TypeError):
            data, metadata = _json(data), _json(metadata)
        if type(recorded_at) is str and len(recorded_at) == _STORED_TIME_LENGTH:
            try:
                at = _from_iso(recorded_at + "+00:00")
            except ValueError:
                at = _time(recorded_at)
        else:
            at = _time(recorded_at)
        append(_row(EventRow, (position, stream_id, version, event_id, type_, data, metadata, at, prev_hash, hash_)))
    return out


def to_rows_until(includes: Callable[[int, datetime], bool]) -> Callable[[list], list[EventRow]]:
    """`to_rows` for a point of the log: rows past the point (`includes` says no) are not decoded,
    and the page ends there. A row whose time does not read ends it too, kept for the caller
    to refuse (where such a row falls against the point cannot be told)."""
    def convert(rows) -> list[EventRow]:
        out = []
        for position, stream_id, version, event_id, type_, data, metadata, recorded_at, prev_hash, hash_ in rows:
            at = _time(recorded_at)
            readable = isinstance(at, datetime)
            if readable and not includes(position, at):
                break
            out.append(_row(EventRow, (position, stream_id, version, event_id, type_, _json(data), _json(metadata),
                                       at, prev_hash, hash_)))
            if not readable:
                break
        return out
    return convert


def is_intact(ev: RecordedEvent) -> str | None:
    """Why this row cannot be interpreted (None when data, metadata and time are well formed)."""
    if not isinstance(ev.data, dict):
        return "its data is not a JSON object (edited in the database?)"
    if not isinstance(ev.metadata, dict):
        return "its metadata is not a JSON object (edited in the database?)"
    if not isinstance(ev.recorded_at, datetime):
        return f"its time {ev.recorded_at!r} is not a valid time (edited in the database?)"
    return None


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

    def clauses(self, dialect: str = "sqlite") -> list:
        out = []
        if self.stream_id is not None:
            out.append(E.c.stream_id == self.stream_id)
        if self.types:
            alts = []
            for t in self.types:
                if t.endswith(".*"):
                    alts.append(E.c.type.like(t[:-1].replace("%", r"\%").replace("_", r"\_") + "%", escape="\\"))
                else:
                    alts.append(E.c.type == t)
            out.append(or_(*alts))
        if self.actor is not None:
            out.append(_field(E.c.metadata, "actor", dialect) == self.actor)
        if self.operation_id is not None:
            out.append(or_(_field(E.c.metadata, "operation_id", dialect) == self.operation_id,
                           _field(E.c.data, "operation_id", dialect) == self.operation_id))
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
        if self.types and not any(ev.type.startswith(t[:-1]) if t.endswith(".*") else ev.type == t
                                  for t in self.types):
            return False
        meta = ev.metadata if isinstance(ev.metadata, dict) else {}
        data = ev.data if isinstance(ev.data, dict) else {}
        if self.actor is not None and meta.get("actor") != self.actor:
            return False
        if self.operation_id is not None and self.operation_id not in (meta.get("operation_id"), data.get("operation_id")):
            return False
        if self.since is not None and ev.recorded_at < self.since:
            return False
        if self.until is not None and ev.recorded_at > self.until:
            return False
        return self.upto_position is None or ev.position <= self.upto_position


def _field(column, key: str, dialect: str):
    if dialect == "sqlite":
        # json_extract fails the whole query on one malformed row; skip such rows instead.
        return case((func.json_valid(type_coerce(column, String)) == 1, func.json_extract(column, f"$.{key}")),
                    else_=None)
    return column[key].as_string()


# Where a server's page starts: after the version of the event its cursor names, when that is one
# of the server's own events (every `next_after` of a server's page is; one probe of the log's
# key), else after the server's last version at or before the cursor.
_VERSION_AT = select(E.c.version).where(E.c.position == bindparam("position"), E.c.stream_id == bindparam("stream_id"))
_LAST_VERSION_UPTO = select(func.max(E.c.version)).where(E.c.stream_id == bindparam("stream_id"),
                                                         E.c.position <= bindparam("position"))


async def page(engine: AsyncEngine, flt: EventFilter, after: int = 0, limit: int = DEFAULT_LIMIT
               ) -> tuple[list[RecordedEvent], int | None]:
    """Up to `limit` matching events after position `after`, and the `after` of the next page
    (None when this page is the last).

    The whole log comes in position order. One server's events come in their version order, read
    by the (stream_id, version) index the log keeps for its unique versions: for every stream the
    store wrote that is the log's order too (a stream's versions and positions rise together), so
    no second index per server has to be written on every commit. Verification of one server
    checks that the two orders still agree."""
    clauses = flt.clauses(engine.dialect.name)
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


async def iterate(engine: AsyncEngine, flt: EventFilter | None = None, after: int = 0, page_size: int = PAGE
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


async def stream_versions(engine: AsyncEngine, stream_id: str, after_version: int, page_size: int = PAGE
                          ) -> AsyncIterator[RecordedEvent]:
    """One stream's events in version order from `after_version` + 1 (for replays)."""
    async for events in stream_pages(engine, stream_id, after_version, page_size):
        for ev in events:
            yield ev


# Built once: on SQLite each page is then the same compiled statement (engine.store.log_reader).
_STREAM_PAGE = (select(*_COLUMNS).where(E.c.stream_id == bindparam("stream_id"), E.c.version > bindparam("after_version"))
                .order_by(E.c.version).limit(bindparam("page_size")))


async def stream_pages(engine: AsyncEngine, stream_id: str, after_version: int, page_size: int = PAGE,
                       convert: Callable[[list], list] = to_events) -> AsyncIterator[list]:
    """The same events a page at a time, each page `convert`ed from rows (`to_rows`: EventRows,
    for a fold that keeps none of them). A caller that iterates pages pays no step of an async
    generator per event, and on SQLite a page is read and converted in one hand-off
    (engine.store.log_reader)."""
    while True:
        params = {"stream_id": stream_id, "after_version": after_version, "page_size": page_size}
        events = await read(engine, _STREAM_PAGE, convert, params)
        yield events
        if len(events) < page_size:
            return
        after_version = events[-1].version


def fold_stream(engine: AsyncEngine, stream_id: str, after_version: int, page_size: int,
                convert: Callable[[list], list], take: Callable[[list], None]) -> Awaitable[None]:
    """`stream_pages` for a fold: each page goes to `take` where it is read, on SQLite the
    reader's thread (see log_reader.walk). An error `take` raises ends the walk and reaches
    whoever awaits it."""
    def next_page(events: list) -> dict | None:
        take(events)
        if len(events) < page_size:
            return None
        return {"stream_id": stream_id, "after_version": events[-1].version, "page_size": page_size}

    return walk(engine, _STREAM_PAGE, {"stream_id": stream_id, "after_version": after_version,
                                       "page_size": page_size}, convert, next_page)


async def stream_exists(engine: AsyncEngine, stream_id: str) -> bool:
    q = select(E.c.position).where(E.c.stream_id == stream_id).limit(1)
    async with engine.connect() as conn:
        return (await conn.execute(q)).first() is not None


async def high_water(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.coalesce(func.max(E.c.position), 0)))).scalar_one()


async def event_at(engine: AsyncEngine, stream_id: str, version: int) -> RecordedEvent | None:
    q = select(*_COLUMNS).where(E.c.stream_id == stream_id, E.c.version == version)
    async with engine.connect() as conn:
        row = (await conn.execute(q)).first()
    return to_event(row) if row is not None else None
