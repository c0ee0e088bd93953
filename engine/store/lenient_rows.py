"""The log's rows as events, decoded leniently: the reader does not trust the database to hold what
the store wrote. A row whose JSON or time was edited by hand is still returned (with the raw text
in place of the value) so that verification can name it, and export can carry it, instead of the
whole read failing (`is_intact` says what is wrong with one).

The rows are those of engine.store.queries (data, metadata and time selected as the stored text).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic_core import from_json as _from_json  # json_loads' parser, without its fallback (see to_rows)

from wingman.engine.events import RecordedEvent
from wingman.engine.store.backends.protocol import Rows
from wingman.engine.store.hashing import json_loads


def _json(raw: Any) -> Any:
    """The JSON value a stored text holds, or the stored value itself when it is not JSON text
    (`raw` is whatever the driver handed back: json_loads raises TypeError for what is not text)."""
    if raw is None or isinstance(raw, (dict, list)):
        return raw
    try:
        return json_loads(raw)
    except (TypeError, ValueError):
        return raw  # kept as text: verification reports it


_STORED_TIME_LENGTH = len("2026-01-01 00:00:00.000000")  # how SQLite holds a time: naive UTC
_from_iso = datetime.fromisoformat


def _time(raw: object) -> object:
    """The time a stored value holds (aware, UTC), or the value itself when it does not read."""
    if type(raw) is str and len(raw) == _STORED_TIME_LENGTH:
        # The spelling the store writes, parsed as UTC in one call (a parse then a replace costs
        # several times this). A text that already carries an offset fails here and is read below.
        try:
            return _from_iso(raw + "+00:00")
        except ValueError:
            pass
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    try:
        ts = datetime.fromisoformat(str(raw))
    except ValueError:
        return raw  # kept as text: verification reports it
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def to_event(row: Sequence[Any]) -> RecordedEvent:
    """A row as a RecordedEvent without validation (the reader must not reject a tampered row)."""
    position, stream_id, version, event_id, type_, data, metadata, recorded_at, prev_hash, hash_ = row
    return RecordedEvent.trusted(
        position=position,
        stream_id=stream_id,
        version=version,
        event_id=event_id,
        type=type_,
        data=_json(data),
        metadata=_json(metadata),
        recorded_at=_time(recorded_at),
        prev_hash=prev_hash,
        hash=hash_,
    )


def to_events(rows: Iterable[Sequence[Any]]) -> list[RecordedEvent]:
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


def to_rows(rows: Rows) -> list[EventRow]:
    # `_json` and `_time` spelled out for the rows the store writes (JSON text, the stored time
    # spelling): a replay converts a million rows, and the three calls a row were a sixth of the
    # conversion. Anything else (an edited row, a driver that hands back values) takes them.
    out: list[EventRow] = []
    append = out.append
    for position, stream_id, version, event_id, type_, data, metadata, recorded_at, prev_hash, hash_ in rows:
        try:
            data, metadata = _from_json(data), _from_json(metadata)
        except (ValueError, TypeError):
            data, metadata = _json(data), _json(metadata)
        at: object  # a time, or the stored value that does not read as one
        if type(recorded_at) is str and len(recorded_at) == _STORED_TIME_LENGTH:
            try:
                at = _from_iso(recorded_at + "+00:00")
            except ValueError:
                at = _time(recorded_at)
        else:
            at = _time(recorded_at)
        append(_row(EventRow, (position, stream_id, version, event_id, type_, data, metadata, at, prev_hash, hash_)))
    return out


def to_rows_until(includes: Callable[[int, datetime], bool]) -> Callable[[Rows], list[EventRow]]:
    """`to_rows` for a point of the log: rows past the point (`includes` says no) are not decoded,
    and the page ends there. A row whose time does not read ends it too, kept for the caller
    to refuse (where such a row falls against the point cannot be told)."""

    def convert(rows: Rows) -> list[EventRow]:
        out: list[EventRow] = []
        for position, stream_id, version, event_id, type_, data, metadata, recorded_at, prev_hash, hash_ in rows:
            at = _time(recorded_at)
            if isinstance(at, datetime) and not includes(position, at):
                break
            out.append(
                _row(
                    EventRow,
                    (position, stream_id, version, event_id, type_, _json(data), _json(metadata), at, prev_hash, hash_),
                )
            )
            if not isinstance(at, datetime):
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
