"""The per-stream hash chain: each event's hash covers its canonical form and the previous hash."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

GENESIS = "0" * 64


def canonical_time(ts: datetime) -> str:
    """One spelling of a timestamp, whatever the database hands back (naive UTC on SQLite)."""
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
