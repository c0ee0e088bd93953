"""Which node wrote what, for auditing a fleet's shared database (docs/fleet.md, "Auditing a fleet").

An event names its node in the `events.node_id` column (NULL: written before node ids were
recorded). The column is not part of a RecordedEvent (nor of its hash), so the audit reads it
beside the events: `nodes_at` for a page's positions, `NodeFilter` to keep one node's events or
one node's streams, `streams_by_node` for which streams each node owns or wrote.

A node's streams are those `stream_owners` gives it and those whose events carry its node id: a
server handed over from one node to another is in both (each wrote part of its history).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.audit.report import Finding
from wingman.engine.events import RecordedEvent
from wingman.engine.store.backends import Backend
from wingman.engine.store.queries import PAGE, EventFilter, page
from wingman.engine.store.schema import events as E
from wingman.engine.store.schema import stream_owners as O

# A fleet's streams grouped by node; events written before node ids (and streams no node has
# claimed since) are grouped under None.
NodeStreams = dict[str | None, set[str]]

_LOOKUP = 1000  # positions per query: well under SQLite's limit on a statement's parameters


@dataclass
class NodeFilter(EventFilter):
    """An EventFilter that also keeps one node's events (`node_id`; with `unnamed`, also those
    written before node ids) and/or a set of streams (`stream_ids`)."""

    node_id: str | None = None
    unnamed: bool = False
    stream_ids: Collection[str] | None = None

    def clauses(self, backend: Backend) -> list[ColumnElement[bool]]:
        out = super().clauses(backend)
        if self.node_id is not None:
            mine = E.c.node_id == self.node_id
            out.append(or_(mine, E.c.node_id.is_(None)) if self.unnamed else mine)
        if self.stream_ids is not None:
            out.append(E.c.stream_id.in_(sorted(self.stream_ids)))
        return out


async def nodes_at(engine: AsyncEngine, positions: Iterable[int]) -> dict[int, str | None]:
    """The node of the event at each position (None: written before node ids)."""
    wanted = sorted(set(positions))
    found: dict[int, str | None] = {}
    async with engine.connect() as conn:
        for i in range(0, len(wanted), _LOOKUP):
            chunk = wanted[i : i + _LOOKUP]
            rows = await conn.execute(select(E.c.position, E.c.node_id).where(E.c.position.in_(chunk)))
            found.update({int(r[0]): r[1] for r in rows})
    return found


async def node_at(engine: AsyncEngine, position: int | None) -> str | None:
    """The node of the event at `position` (None: no position, or an event from before node ids)."""
    return None if position is None else (await nodes_at(engine, [position])).get(position)


async def with_nodes(
    engine: AsyncEngine, flt: EventFilter | None = None, page_size: int = PAGE
) -> AsyncIterator[list[tuple[RecordedEvent, str | None]]]:
    """The matching events in `page`'s order, a page at a time, each with its node."""
    flt, after = flt or EventFilter(), 0
    while True:
        events, after_next = await page(engine, flt, after, page_size)
        nodes = await nodes_at(engine, (ev.position for ev in events))
        yield [(ev, nodes.get(ev.position)) for ev in events]
        if after_next is None:
            return
        after = after_next


async def name_nodes(engine: AsyncEngine, findings: list[Finding]) -> None:
    """Each finding's node: its event's, else (no event: a live state, a dropped operation) its
    stream's owner's. A handful of lookups: only the findings kept are named."""
    nodes = await nodes_at(engine, (f.position for f in findings if f.position is not None))
    owners: dict[str, str | None] = {}
    for f in findings:
        if f.position is not None:
            f.node = nodes.get(f.position)  # None: an event from before node ids, which no one can claim
        elif f.stream_id:
            if f.stream_id not in owners:
                owners[f.stream_id] = await owner_of(engine, f.stream_id)
            f.node = owners[f.stream_id]


async def owner_of(engine: AsyncEngine, stream_id: str) -> str | None:
    """The node a stream belongs to: its `stream_owners` row, else the node of its last event (the
    store's own rule, engine.store.ownership); None when no node has it."""
    async with engine.connect() as conn:
        owner = (await conn.execute(select(O.c.node_id).where(O.c.stream_id == stream_id))).scalar()
        if owner is None:
            last = select(E.c.node_id).where(E.c.stream_id == stream_id).order_by(E.c.version.desc()).limit(1)
            owner = (await conn.execute(last)).scalar()
    return None if owner is None else str(owner)


async def streams_by_node(engine: AsyncEngine) -> NodeStreams:
    """Every node's streams: owned (stream_owners) or written (its events carry the node id). A
    stream with neither (all its events from before node ids, no owner) is under None."""
    grouped: NodeStreams = {}
    named: set[str] = set()
    async with engine.connect() as conn:
        for stream, node in await conn.execute(select(O.c.stream_id, O.c.node_id)):
            grouped.setdefault(str(node), set()).add(str(stream))
            named.add(str(stream))
        written = select(E.c.stream_id, E.c.node_id).group_by(E.c.stream_id, E.c.node_id)
        unnamed: set[str] = set()
        for stream, node in await conn.execute(written):
            if node is None:
                unnamed.add(str(stream))
            else:
                grouped.setdefault(str(node), set()).add(str(stream))
                named.add(str(stream))
    if unnamed - named:
        grouped[None] = unnamed - named
    return grouped


async def shared(engine: AsyncEngine) -> bool:
    """Whether nodes claim streams in this database (a fleet's, on PostgreSQL): a node's own SQLite
    file has no owner rows, and its tables need no node column."""
    async with engine.connect() as conn:
        return (await conn.execute(select(O.c.stream_id).limit(1))).first() is not None


async def node_ids(engine: AsyncEngine) -> list[str]:
    """The nodes the database knows, by name: those that wrote an event or own a stream."""
    async with engine.connect() as conn:
        written = {r[0] for r in await conn.execute(select(E.c.node_id).where(E.c.node_id.is_not(None)).distinct())}
        owning = {r[0] for r in await conn.execute(select(O.c.node_id).distinct())}
    return sorted(str(n) for n in written | owning)
