"""Proofs a third party can check with the daemon's public key and a few lines of code (the format
is in the README, "Proofs"): that one event is in the log a checkpoint signed (inclusion), and that
a later checkpoint extends an earlier one (consistency). Both follow RFC 9162 section 2.1.

The tree's leaves come from the event hashes the checkpoints table kept with each checkpoint, once
they reproduce the signed root (no need to read and hash the whole log), else from the log itself,
recomputed from the rows. An inclusion proof is given only for an event whose row still hashes to
the leaf that was signed, and only against a checkpoint the leaves reproduce: a proof that would
not check is refused with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.checkpoints import storage
from wingman.engine.checkpoints.chain import Entry, load_chain
from wingman.engine.checkpoints.tree import consistency_proof, inclusion_proof, leaf_hash, tree_root
from wingman.engine.events import RecordedEvent
from wingman.engine.store.hashing import canonical_time, leaf_of
from wingman.engine.store.queries import EventFilter, iterate

INCLUSION = "wingman-inclusion-proof/1"
CONSISTENCY = "wingman-consistency-proof/1"


class NoProof(Exception):
    """No proof can be given: no such position or checkpoint."""


class LogDisagrees(NoProof):
    """No proof can be given because the log no longer matches what was signed (a finding)."""


async def _leaves(engine: AsyncEngine, size: int) -> list[bytes]:
    """The leaf hashes of positions 1..size, recomputed from the rows."""
    hashes = [leaf_hash(leaf_of(ev)) async for ev in iterate(engine, EventFilter(upto_position=size))]
    if len(hashes) < size:
        raise LogDisagrees(
            f"the log holds {len(hashes)} events up to position {size}, fewer than the {size} the "
            "checkpoint signed (run `wingman audit verify`)"
        )
    return hashes


def _kept_leaves(believed: list[Entry], size: int) -> list[bytes] | None:
    """The leaf hashes of positions 1..size from the leaves kept with checkpoints 1, 2, 3...,
    when they are all there (whether they are the signed ones is for the caller to check)."""
    kept: list[bytes] = []
    for expected, e in enumerate(sorted(believed, key=lambda x: x.seq), start=1):
        if e.seq != expected or e.leaves is None or len(e.leaves) != e.size - len(kept):
            return None
        kept.extend(e.leaves)
        if len(kept) >= size:
            return [leaf_hash(x) for x in kept[:size]]
    return None


async def _tree_leaves(engine: AsyncEngine, believed: list[Entry], *against: Entry) -> list[bytes]:
    size = max(e.size for e in against)
    hashes = _kept_leaves(believed, size)
    if hashes is None or any(tree_root(hashes, 0, e.size).hex() != e.signed.root for e in against):
        hashes = await _leaves(engine, size)
    for e in against:
        _checked(hashes, e)
    return hashes


async def _believed(engine: AsyncEngine, trusted_key: str | None, file: Path | None) -> list[Entry]:
    nodes = storage.nodes_of(await storage.load(engine, with_leaves=False))
    if len(nodes) > 1:  # a node's leaves are its own events: a proof would have to name them
        raise NoProof(
            f"the checkpoints here are {len(nodes)} nodes' logs ({', '.join(nodes)}): "
            "proofs in a fleet are not built yet"
        )
    chain = await load_chain(engine, trusted_key, file)
    believed = chain.believed
    if not believed:
        raise NoProof(
            "no signed checkpoint can be believed"
            + (f" with key {trusted_key}" if trusted_key else "")
            + ": there is nothing to prove against"
        )
    return believed


def event_document(ev: RecordedEvent) -> dict[str, Any]:
    """The event as its hash covers it (engine.store.hashing.event_hash), plus where it is."""
    return {
        "position": ev.position,
        "stream_id": ev.stream_id,
        "version": ev.version,
        "event_id": ev.event_id,
        "type": ev.type,
        "data": ev.data,
        "metadata": ev.metadata,
        "recorded_at": canonical_time(ev.recorded_at),
        "prev_hash": ev.prev_hash,
    }


def _checked(hashes: list[bytes], e: Entry) -> None:
    if tree_root(hashes, 0, e.size).hex() != e.signed.root:
        raise LogDisagrees(
            f"the log no longer reproduces checkpoint {e.seq} (size {e.size}): no proof against it "
            "would check (run `wingman audit verify`)"
        )


async def prove_inclusion(
    engine: AsyncEngine,
    position: int,
    trusted_key: str | None = None,
    checkpoint_file: Path | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    """The event at `position` against checkpoint `seq`, or the latest believed one covering it."""
    believed = await _believed(engine, trusted_key, checkpoint_file)
    if seq is not None:
        chosen = next((e for e in believed if e.seq == seq), None)
        if chosen is None:
            raise NoProof(f"no believed checkpoint with seq {seq}")
    else:
        chosen = max(believed, key=lambda e: (e.size, e.seq))
    hashes = await _tree_leaves(engine, believed, chosen)
    target = None
    async for ev in iterate(engine, EventFilter(upto_position=position), after=position - 1):
        target = ev
    if target is None:
        raise NoProof(f"there is no event at position {position}")
    index = position - 1  # a log written by the daemon has positions 1..N: leaf index = position - 1
    if index >= chosen.size:
        raise NoProof(
            f"position {position} is not covered by checkpoint {chosen.seq} (size {chosen.size})"
            + ("; it is not yet covered by any checkpoint" if seq is None else "")
        )
    if leaf_hash(leaf_of(target)) != hashes[index]:
        raise LogDisagrees(
            f"the event at position {position} is not the one checkpoint {chosen.seq} signed (it was "
            "changed, moved or replaced: run `wingman audit verify`)"
        )
    return {
        "proof": INCLUSION,
        "leaf_index": index,
        "tree_size": chosen.size,
        "event": event_document(target),
        "event_hash": leaf_of(target).hex(),
        "path": [h.hex() for h in inclusion_proof(hashes, index, chosen.size)],
        "checkpoint": chosen.signed.as_dict(),
    }


async def prove_consistency(
    engine: AsyncEngine,
    old_size: int,
    new_size: int,
    trusted_key: str | None = None,
    checkpoint_file: Path | None = None,
) -> dict[str, Any]:
    """That the checkpoint of `new_size` events extends the one of `old_size` (the latest believed
    checkpoint of each size)."""
    if not 0 < old_size <= new_size:
        raise NoProof("a consistency proof goes from a smaller tree to a larger one, both of 1 event or more")
    believed = await _believed(engine, trusted_key, checkpoint_file)
    sizes = sorted({e.size for e in believed})

    def of(size: int) -> Entry:
        found = [e for e in believed if e.size == size]
        if not found:
            shown = ", ".join(map(str, sizes[-10:]))
            raise NoProof(f"no believed checkpoint has size {size} (the latest sizes: {shown})")
        return max(found, key=lambda e: e.seq)

    old, new = of(old_size), of(new_size)
    hashes = await _tree_leaves(engine, believed, old, new)
    return {
        "proof": CONSISTENCY,
        "old_size": old.size,
        "new_size": new.size,
        "path": [h.hex() for h in consistency_proof(hashes, old.size, new.size)],
        "old": old.signed.as_dict(),
        "new": new.signed.as_dict(),
    }
