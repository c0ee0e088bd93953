"""The tree brought up to the log's end when the daemon starts.

The cheap way: the latest checkpoint's compact range, once it checks out (signed by one of our
keys, the range reproduces the signed root, and the event at position `size` is there and still
hashes to the last leaf the checkpoint added, so the log was neither cut short nor swapped for
another), then only the events after it are read. Otherwise every event is read from the first,
and the reason is logged: the log no longer agrees with what was signed, which `wingman audit
verify` will report, and new checkpoints cover the log as it is now (their disagreement with the
old ones stays visible to any verifier). Edits in the middle of the log are not looked for here:
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
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.checkpoints import storage
from wingman.engine.checkpoints.format import SignedCheckpoint
from wingman.engine.checkpoints.tree import CompactRange, ProofError
from wingman.engine.store.hashing import leaf_of
from wingman.engine.store.queries import EventFilter, iterate
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


async def _why_not(engine: AsyncEngine, stored: storage.StoredCheckpoint, keys: set[str]) -> str | None:
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
    last = [ev async for ev in iterate(engine, EventFilter(upto_position=cp.size), after=cp.size - 1)]
    if not last:
        return f"the log has no event at position {cp.size} (it was cut short, or replaced)"
    kept = stored.leaves or b""
    if len(kept) >= 32 and leaf_of(last[0]) != kept[-32:]:
        return f"the event at position {cp.size} no longer hashes to the leaf the checkpoint signed"
    return None


async def _stored_hashes(engine: AsyncEngine, after: int, page: int = 20000) -> AsyncIterator[tuple[int, object]]:
    """(position, hash) of every event after `after`, in position order, a page at a time."""
    while True:
        q = select(E.c.position, E.c.hash).where(E.c.position > after).order_by(E.c.position).limit(page)
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


async def resume_tree(engine: AsyncEngine, keys: set[str], file_seq: int = 0) -> Resumed:
    """The tree over the whole log; `keys` are our public keys (base64), `file_seq` the last seq
    in the checkpoint file (so a new checkpoint never reuses a number either copy holds)."""
    latest = await storage.latest(engine)
    last = latest.signed if latest is not None else None
    last_seq = max(file_seq, latest_seq(latest))
    start, tree, problem, how = 0, CompactRange(), None, "folded"
    if latest is not None:
        problem = await _why_not(engine, latest, keys)
        if problem is None and last is not None:  # (_why_not says None only for a checkpoint that reads)
            start, tree, how = last.size, CompactRange.from_hex(last.size, latest.frontier or []), "resumed"
    covered = last.size if last is not None else 0
    out = Resumed(tree=tree, last=last, last_seq=last_seq, how=how, problem=problem)
    async for _, stored_hash in _stored_hashes(engine, start):
        leaf = _leaf_data(stored_hash)
        tree.append(leaf)
        if tree.size > covered:
            out.uncovered.append(leaf)
        out.folded += 1
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
