"""Which node a stream (a server) belongs to, where several nodes write one PostgreSQL database
(docs/fleet.md, "A server belongs to one node").

A stream belongs to the node named in its `stream_owners` row. A node without that row claims the
stream with its first write, unless the stream's last event names another node (a log copied in
without owner rows keeps its attribution). Another node's write is refused, in the write's own
transaction, before anything is inserted: `OwnedElsewhere`, naming the stream and its owner.

The claim runs inside the group's transaction after the log's lock is taken
(engine.store.backends.postgres), so two nodes claiming the same new stream are one after the
other, and the second sees the first's row. The (stream_id, version) key stays behind it: a node
that appended on a stale view of a stream collides with the version already there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wingman.engine.store.backends import Backend
from wingman.engine.store.queries import EventFilter
from wingman.engine.store.schema import events as E
from wingman.engine.store.schema import stream_owners as O


class OwnedElsewhere(Exception):
    """A node wrote to streams that belong to other nodes; nothing of the group was written."""

    def __init__(self, node_id: str, owners: dict[str, str]):
        self.node_id, self.owners = node_id, owners
        named = ", ".join(f"{stream} belongs to node {owner}" for stream, owner in sorted(owners.items()))
        super().__init__(f"node {node_id} may not write there: {named}")


# The owner of each wanted stream (its row, else the node of its last event), the claim of those
# that have none or are already this node's, and the ones that are another node's. The final
# SELECT reads the table as it was before the claim (a data-modifying WITH is not seen by its
# own statement), so a claimed stream is never reported as another's.
_CLAIM = text(
    """
    WITH me AS (SELECT CAST(:node_id AS varchar) AS node_id),
    wanted AS (SELECT DISTINCT unnest(CAST(:streams AS varchar[])) AS stream_id),
    owner AS (
        SELECT w.stream_id,
               coalesce(o.node_id, (SELECT e.node_id FROM events e WHERE e.stream_id = w.stream_id
                                    ORDER BY e.version DESC LIMIT 1)) AS node_id
        FROM wanted w LEFT JOIN stream_owners o ON o.stream_id = w.stream_id
    ),
    claimed AS (
        INSERT INTO stream_owners (stream_id, node_id, claimed_at)
        SELECT owner.stream_id, me.node_id, now() FROM owner, me
        WHERE owner.node_id IS NULL OR owner.node_id = me.node_id
        ON CONFLICT (stream_id) DO NOTHING
    )
    SELECT owner.stream_id, owner.node_id FROM owner, me WHERE owner.node_id <> me.node_id
    """
)


async def claim(conn: AsyncConnection, node_id: str, streams: Iterable[str]) -> None:
    """Claim the streams for `node_id` in the caller's transaction, or raise OwnedElsewhere
    (the caller's transaction then rolls back, claims included)."""
    rows = (await conn.execute(_CLAIM, {"node_id": node_id, "streams": sorted(set(streams))})).all()
    if rows:
        raise OwnedElsewhere(node_id, {r[0]: r[1] for r in rows})


async def owners(engine: AsyncEngine) -> dict[str, str]:
    """Every claimed stream and its node."""
    async with engine.connect() as conn:
        return {r[0]: r[1] for r in await conn.execute(select(O.c.stream_id, O.c.node_id))}


async def hand_over(engine: AsyncEngine, stream_id: str, from_node: str, to_node: str) -> bool:
    """Give a stream to another node; False when `from_node` does not own it. Only safe while the
    old node is stopped or no longer holds the server: a running node remembers the streams it
    has claimed, and does not ask again (docs/fleet.md)."""
    async with engine.begin() as conn:
        moved = await conn.execute(
            update(O)
            .where(O.c.stream_id == stream_id, O.c.node_id == from_node)
            .values(node_id=to_node, claimed_at=func.now())
        )
    return bool(moved.rowcount)


async def owned_elsewhere(engine: AsyncEngine, node_id: str) -> set[str]:
    """The streams whose owner row names another node: what a node leaves out of its registry at
    boot (engine.servers.registry). A stream no node has claimed is no one's, so not among them."""
    async with engine.connect() as conn:
        return {r[0] for r in await conn.execute(select(O.c.stream_id).where(O.c.node_id != node_id))}


@dataclass
class OwnEvents(EventFilter):
    """An EventFilter that keeps one node's own events (`node_id`; None keeps every node's): what
    a node's readers of the log follow in a fleet's shared database (its Panel outboxes)."""

    node_id: str | None = None

    def clauses(self, backend: Backend) -> list[ColumnElement[bool]]:
        out = super().clauses(backend)
        if self.node_id is not None:
            out.append(E.c.node_id == self.node_id)
        return out
