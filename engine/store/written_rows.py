"""The log's rows as the store writes them and reads its own back (engine.store.event_store):
`append_rows`, one append's rows, each hashed onto the one before it, and `recorded`, a row the
store wrote as an event, trusted. (A reader that must not trust the database reads rows with
engine.store.lenient_rows.)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from wingman.engine.events import NewEvent, RecordedEvent, new_id
from wingman.engine.store.backends import GroupRow
from wingman.engine.store.hashing import canonical_json, hash_of_parts


def append_rows(
    stream_id: str,
    events: list[NewEvent],
    version: int,
    prev: str,
    now: datetime,
    now_text: str,
    node_id: str | None,
) -> list[GroupRow]:
    """The rows of one append, each hashed onto the one before it. The canonical JSON of data and
    metadata is made once, for the hash, and is also the text the writer stores; the events
    of one append usually share one metadata dict, spelled once for all of them."""
    rows: list[GroupRow] = []
    last_metadata: dict[str, Any] | None = None
    metadata_json = ""
    for ev in events:
        version += 1
        event_id = new_id()
        data_json = canonical_json(ev.data)
        if ev.metadata is not last_metadata:
            last_metadata, metadata_json = ev.metadata, canonical_json(ev.metadata)
        h = hash_of_parts(
            stream_id=stream_id,
            version=version,
            event_id=event_id,
            type=ev.type,
            data_json=data_json,
            metadata_json=metadata_json,
            recorded_at=now_text,
            prev_hash=prev,
        )
        rows.append(
            {
                "stream_id": stream_id,
                "version": version,
                "event_id": event_id,
                "type": ev.type,
                "data": ev.data,
                "metadata": ev.metadata,
                "recorded_at": now,
                "prev_hash": prev,
                "hash": h,
                "data_json": data_json,
                "metadata_json": metadata_json,
                "node_id": node_id,
            }
        )
        prev = h
    return rows


def recorded(row: Sequence[Any]) -> RecordedEvent:
    """A row the store wrote, as an event (the database's types already checked it: no second
    validation, which cost more than reading the row when the registry folds a long log)."""
    position, stream_id, version, event_id, type_, data, metadata, recorded_at, prev_hash, hash_ = row
    # SQLite hands times back naive (they are stored as UTC): make them aware, so an event read
    # back equals the one the writer returned and views folded either way agree.
    if recorded_at.tzinfo is None:
        recorded_at = recorded_at.replace(tzinfo=UTC)
    return RecordedEvent.trusted(
        position=position,
        stream_id=stream_id,
        version=version,
        event_id=event_id,
        type=type_,
        data=data,
        metadata=metadata,
        recorded_at=recorded_at,
        prev_hash=prev_hash,
        hash=hash_,
    )
