"""The node's tree brought up to the log's end when the daemon starts.

A node's leaves are its own events in position order (`node_id` its own), preceded by the events
from before node ids were recorded (`node_id` NULL), which open every node's log: so a single
node's log is the whole log, exactly as before checkpoints were per node. The latest checkpoint is
the node's own (the table's rows of its node id), never another node's.

The cheap way: the latest checkpoint's compact range, once it checks out (signed by one of our
keys, the range reproduces the signed root, and the event at the position it says it covers up to
is there, is the node's, and still hashes to the last leaf the checkpoint added, so the log was
neither cut short nor swapped for another), then only the node's events after it are read.
Otherwise every one of the node's events is read from the first, and the reason is logged: the log
no longer agrees with what was signed, which `wingman audit verify` will report, and new
checkpoints cover the log as it is now (their disagreement with the old ones stays visible to any
verifier). Edits in the middle of the log are not looked for here:
that is verification's job, and the resumed range still summarises what was signed.

The events read are folded by their stored hash, the value the writer computed for them, as the
live subscriber folds the writer's own: reading one column keeps boot fast. Verification, which
must not trust that column, recomputes every leaf from the row; a row whose content no longer
matches its stored hash is a finding there either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.checkpoints import storage
from wingman.engine.checkpoints.format import SignedCheckpoint
from wingman.engine.checkpoints.tree import CompactRange, ProofError
from wingman.engine.store.schema import events as E

log = structlog.get_logger("wingman.checkpoints")


@dataclass
class Resumed:
    tree: CompactRange
    last: SignedCheckpoint | None  # the latest checkpoint in the table, checked or not
    last_seq: int  # the highest seq in use (the next checkpoint takes last_seq + 1)
    uncovered: list[bytes] = field(default_factory=list)  # leaves after the last checkpoint's size
    folded: int = 0  # events read from the log to get here
    how: str = "empty"  # "resumed" | "folded" | "empty"
    problem: str | None = None  # why the latest checkpoint was not resumed from
    last_position: int = 0  # the log position of the tree's last leaf


def mine(node: str | None) -> ColumnElement[bool]:
    """The node's leaves: its own events and those from before node ids."""
    if node is None:
        return E.c.node_id.is_(None)
    return or_(E.c.node_id == node, E.c.node_id.is_(None))


async def _why_not(
    engine: AsyncEngine, stored: storage.StoredCheckpoint, keys: set[str], node: str | None
) -> str | None:
    cp = stored.signed
    if cp is None or stored.problem:
        return stored.problem or "it cannot be read"
    if cp.key not in keys and cp.next_key not in keys:
        return "it is signed by a key this daemon does not hold"
    if not cp.signature_ok():
        return "its signature does not check"
    try:
        tree = CompactRange.from_hex(cp.size, stored.frontier or [])
    except ProofError as exc:
        return f"its compact range is damaged ({exc})"
    if tree.root().hex() != cp.root:
        return "its compact range does not reproduce its signed root"
    if cp.size == 0:
        return None
    at = stored.upto_position
    if at is None:
        return "it does not say up to which position it covers"
    async with engine.connect() as conn:
        last = (await conn.execute(select(E.c.hash).where(E.c.position == at, mine(node)))).first()
    if last is None:
        return f"the log has no event at position {at} by this node (it was cut short, or replaced)"
    kept = stored.leaves or b""
    if len(kept) >= 32 and _leaf_data(last.hash) != kept[-32:]:
        return f"the event at position {at} no longer hashes to the leaf the checkpoint signed"
    return None


async def _stored_hashes(
    engine: AsyncEngine, after: int, node: str | None, page: int = 20000
) -> AsyncIterator[tuple[int, object]]:
    """(position, hash) of the node's events after `after`, in position order, a page at a time."""
    while True:
        q = select(E.c.position, E.c.hash).where(E.c.position > after, mine(node)).order_by(E.c.position).limit(page)
        async with engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        for r in rows:
            yield r.position, r.hash
        if len(rows) < page:
            return
        after = rows[-1].position


def _leaf_data(stored_hash: object) -> bytes:
    try:  # bytes.fromhex raises TypeError for anything but text
        data = bytes.fromhex(stored_hash) if isinstance(stored_hash, str) else b""
    except ValueError:
        data = b""
    # A hash column edited into nonsense still gets a leaf of its own (one nobody signed).
    return data if len(data) == 32 else hashlib.sha256(b"unreadable hash: " + str(stored_hash).encode()).digest()


async def resume_tree(engine: AsyncEngine, keys: set[str], node: str, file_seq: int = 0) -> Resumed:
    """The node's tree over its own events; `keys` are our public keys (base64), `file_seq` the
    node's last seq in the checkpoint file (so a new checkpoint never reuses a number either copy
    holds)."""
    latest = await storage.latest(engine, node)
    last = latest.signed if latest is not None else None
    last_seq = max(file_seq, latest_seq(latest))
    start, tree, problem, how = 0, CompactRange(), None, "folded"
    if latest is not None:
        problem = await _why_not(engine, latest, keys, node)
        if problem is None and last is not None:  # (_why_not says None only for a checkpoint that reads)
            start, tree, how = (
                latest.upto_position or 0,
                CompactRange.from_hex(last.size, latest.frontier or []),
                "resumed",
            )
    covered = last.size if last is not None else 0
    out = Resumed(tree=tree, last=last, last_seq=last_seq, how=how, problem=problem, last_position=start)
    async for position, stored_hash in _stored_hashes(engine, start, node):
        leaf = _leaf_data(stored_hash)
        tree.append(leaf)
        if tree.size > covered:
            out.uncovered.append(leaf)
        out.folded += 1
        out.last_position = position
    if latest is None and tree.size == 0:
        out.how = "empty"
    if latest is not None and problem is not None:
        log.error(
            "the log does not agree with the latest checkpoint; the tree was rebuilt from every event "
            "(run `wingman audit verify --key ...`)",
            seq=latest.signed.seq if latest.signed else None,
            problem=problem,
        )
    return out


def latest_seq(stored: storage.StoredCheckpoint | None) -> int:
    if stored is None:
        return 0
    return max(stored.row_seq or 0, stored.signed.seq if stored.signed is not None else 0)
