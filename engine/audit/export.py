"""The whole log as NDJSON or CSV, streamed a page at a time (memory stays flat for any size),
and readers that give the same records back from either format.

A record is the event exactly as stored, times in the hash's canonical spelling, so an exported
log can be re-verified without the database, and the node that wrote it (`node_id`, last: null
for an event from before node ids; not part of the hash).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.audit.nodes import with_nodes
from wingman.engine.events import RecordedEvent
from wingman.engine.store.backends import backend_of
from wingman.engine.store.hashing import canonical_time
from wingman.engine.store.queries import EventFilter
from wingman.engine.store.schema import events as events_table

Progress = Callable[[int], None]  # told how many events are done, once a page

FIELDS = (
    "position",
    "stream_id",
    "version",
    "event_id",
    "type",
    "recorded_at",
    "data",
    "metadata",
    "prev_hash",
    "hash",
    "node_id",
)
FORMATS = ("ndjson", "csv")


def to_record(ev: RecordedEvent, node_id: str | None = None) -> dict[str, Any]:
    t = ev.recorded_at
    return {
        "position": ev.position,
        "stream_id": ev.stream_id,
        "version": ev.version,
        "event_id": ev.event_id,
        "type": ev.type,
        "recorded_at": canonical_time(t) if isinstance(t, datetime) else t,
        "data": ev.data,
        "metadata": ev.metadata,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
        "node_id": node_id,
    }


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class _Writer:
    def __init__(self, out: TextIO, fmt: str):
        if fmt not in FORMATS:
            raise ValueError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.out, self.fmt = out, fmt
        self.buffer = io.StringIO()
        self.csv = csv.writer(self.buffer, lineterminator="\n")
        if fmt == "csv":
            self.csv.writerow(FIELDS)

    def add(self, ev: RecordedEvent, node_id: str | None) -> None:
        rec = to_record(ev, node_id)
        if self.fmt == "ndjson":
            self.buffer.write(_compact(rec) + "\n")
        else:
            self.csv.writerow([_compact(rec[f]) if f in ("data", "metadata") else rec[f] for f in FIELDS])

    def flush(self) -> None:
        self.out.write(self.buffer.getvalue())
        self.out.flush()
        self.buffer.seek(0)
        self.buffer.truncate()


async def how_many(engine: AsyncEngine, flt: EventFilter | None = None) -> int:
    """How many events match (one count: for a progress bar's total)."""
    clauses = (flt or EventFilter()).clauses(backend_of(engine))
    async with engine.connect() as conn:
        count: int = (await conn.execute(select(func.count()).select_from(events_table).where(*clauses))).scalar_one()
    return count


async def export(
    engine: AsyncEngine,
    out: TextIO,
    fmt: str = "ndjson",
    flt: EventFilter | None = None,
    page_size: int = 1000,
    progress: Progress | None = None,
) -> int:
    """Write every matching event to `out` (a NodeFilter keeps one node's); returns how many."""
    writer = _Writer(out, fmt)
    count = 0
    async for events in with_nodes(engine, flt, page_size):
        for ev, node in events:
            writer.add(ev, node)
        count += len(events)
        writer.flush()
        if progress is not None:
            progress(count)
    return count


def read_ndjson(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            yield json.loads(line)


def read_csv(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    if tuple(header) not in (FIELDS, FIELDS[:-1]):  # an export from before node ids has no node_id
        raise ValueError(f"not a wingman CSV export: the header is {header}")
    for row in reader:
        rec: dict[str, Any] = dict(zip(header, row, strict=False))
        if "node_id" in rec:
            rec["node_id"] = rec["node_id"] or None
        rec["position"], rec["version"] = int(rec["position"]), int(rec["version"])
        rec["data"], rec["metadata"] = json.loads(rec["data"]), json.loads(rec["metadata"])
        yield rec
