"""The per-stream hash chain: each event's hash covers its canonical form and the previous hash.

The same hash, recomputed from a row's contents, is the row's leaf in the Merkle tree over the
whole log (engine.store.merkle): see `leaf_of`."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

GENESIS = "0" * 64


def canonical_time(ts: datetime | str) -> str:
    """One spelling of a timestamp, whatever the database hands back (naive UTC on SQLite). A
    time that does not read (edited by hand) is kept as its text, so its hash still differs."""
    if isinstance(ts, str):
        return ts
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    *,
    stream_id: str,
    version: int,
    event_id: str,
    type: str,
    data: dict[str, Any],
    metadata: dict[str, Any],
    recorded_at: datetime,
    prev_hash: str,
) -> str:
    canonical = json.dumps(
        {
            "stream_id": stream_id,
            "version": version,
            "event_id": event_id,
            "type": type,
            "data": data,
            "metadata": metadata,
            "recorded_at": canonical_time(recorded_at),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def leaf_of(ev) -> bytes:
    """The Merkle leaf of a row: its event hash recomputed from what the row holds now (its
    contents and its prev_hash), as 32 bytes. Never the stored `hash` column, which an editor of
    the database can rewrite along with the contents. Works on a row the lenient reader returned
    with unreadable JSON or time: that row simply gets a leaf nobody signed."""
    return bytes.fromhex(event_hash(stream_id=ev.stream_id, version=ev.version, event_id=ev.event_id, type=ev.type,
                                    data=ev.data, metadata=ev.metadata, recorded_at=ev.recorded_at,
                                    prev_hash=str(ev.prev_hash)))
