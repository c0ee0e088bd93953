"""Where witness cosignatures are kept: the `cosignatures` table (migration 0009), one row per node,
witness and tree size. A witness's latest cosigned size for a node is the largest it holds, so a
daemon restarted tells each witness the right old size.

Reading is lenient like the checkpoints': verification checks each row again (its signature, its
root against the log's), so a row edited into nonsense is named, never believed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.checkpoints.cosignature import Cosignature
from wingman.engine.store.schema import cosignatures as W

if TYPE_CHECKING:
    from wingman.engine.store.event_store import EventStore


@dataclass(frozen=True)
class StoredCosignature:
    node: str
    witness: str
    size: int
    root: str  # hex, as the checkpoints keep theirs
    timestamp: int
    line: str


async def has_table(engine: AsyncEngine) -> bool:
    """A copy from before migration 0009 has none (and no cosignatures)."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: sa_inspect(c).has_table("cosignatures"))


async def save(store: EventStore, node: str, size: int, root: bytes, cosignature: Cosignature) -> None:
    """Keep a cosignature, through the log's writer (a small transaction of its own; a witness that
    cosigned the same size again replaces its row)."""
    key = (W.c.node_id == node) & (W.c.witness == cosignature.witness) & (W.c.size == size)
    row = {
        "node_id": node,
        "witness": cosignature.witness,
        "size": size,
        "root": root.hex(),
        "timestamp": cosignature.timestamp,
        "line": cosignature.line,
    }
    await store.write_beside([(delete(W).where(key), None), (insert(W), [row])])


async def latest_sizes(engine: AsyncEngine, node: str) -> dict[str, int]:
    """Each witness's largest cosigned size for the node's log."""
    if not await has_table(engine):
        return {}
    q = select(W.c.witness, func.max(W.c.size)).where(W.c.node_id == node).group_by(W.c.witness)
    async with engine.connect() as conn:
        return {str(w): int(s) for w, s in (await conn.execute(q)).all()}


async def lines_at(engine: AsyncEngine, node: str, size: int) -> list[str]:
    """The signature lines kept for the node's checkpoint of `size`, by witness name."""
    q = select(W.c.line).where(W.c.node_id == node, W.c.size == size).order_by(W.c.witness)
    async with engine.connect() as conn:
        return [str(r[0]) for r in (await conn.execute(q)).all()]


async def load(engine: AsyncEngine) -> list[StoredCosignature]:
    """Every cosignature kept, by node, witness and size."""
    if not await has_table(engine):
        return []
    q = select(W).order_by(W.c.node_id, W.c.witness, W.c.size)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    return [StoredCosignature(r.node_id, r.witness, int(r.size), r.root, int(r.timestamp), r.line) for r in rows]
