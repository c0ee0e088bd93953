"""Verification of the witness cosignatures kept beside the log (`wingman audit verify --witness KEY
--cosignatures N`): which witnesses vouch for how much of each node's log.

Each cosignature kept of a given witness key is checked again: its Ed25519 cosignature/v1 signature
over the note text of (origin `wingman/<node>`, size, root), and its root against the root the log's
own events give at that size (leaves recomputed from the rows, engine.store.hashing.leaf_of, never
the stored hash). A cosignature that does not verify, or whose root the log does not reproduce (a
fork: the witness saw another log), is a problem; so is a node for which fewer than N witnesses
vouch at all. A witness vouches for the tree it cosigned and every tree before it, so N witnesses
vouch up to the N-th largest of their largest cosigned sizes: the report says that size, the
position of its last event, and what lies past it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.checkpoints import cosigned
from wingman.engine.checkpoints.cosignature import Cosignature, WitnessKey, check_line
from wingman.engine.checkpoints.note import checkpoint_text, origin
from wingman.engine.checkpoints.tree import CompactRange, leaf_hash
from wingman.engine.store.hashing import leaf_of
from wingman.engine.store.queries import EventFilter, high_water, iterate
from wingman.engine.store.schema import events as E

_PAGE = 20000


@dataclass
class NodeCosignatures:
    node: str
    log_size: int = 0  # the node's leaves
    vouched: dict[str, int] = field(default_factory=dict)  # witness -> largest size it vouches for, checked
    quorum_size: int = 0  # the size N witnesses vouch for
    quorum_position: int = 0  # the log position of its last event
    problems: list[str] = field(default_factory=list)


@dataclass
class CosignatureReport:
    required: int
    witnesses: list[str]
    nodes: list[NodeCosignatures] = field(default_factory=list)
    checked: int = 0  # cosignatures of the given keys checked
    unplaced: list[str] = field(default_factory=list)  # problems of no node in particular

    @property
    def problems(self) -> list[str]:
        return self.unplaced + [p for n in self.nodes for p in n.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "required": self.required,
            "witnesses": self.witnesses,
            "cosignatures_checked": self.checked,
            "nodes": [
                {
                    "node": n.node,
                    "log_size": n.log_size,
                    "vouched_by": n.vouched,
                    "vouched_up_to_size": n.quorum_size,
                    "vouched_up_to_position": n.quorum_position,
                    "not_vouched": n.log_size - n.quorum_size,
                    "problems": n.problems,
                }
                for n in self.nodes
            ],
            "problems": self.problems,
        }


async def _node_of_each(engine: AsyncEngine, upto: int) -> AsyncIterator[tuple[int, str | None]]:
    after = 0
    while True:
        q = (
            select(E.c.position, E.c.node_id)
            .where(E.c.position > after, E.c.position <= upto)
            .order_by(E.c.position)
            .limit(_PAGE)
        )
        async with engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        for position, node in rows:
            yield int(position), node
        if len(rows) < _PAGE:
            return
        after = int(rows[-1][0])


async def _log_roots(
    engine: AsyncEngine, wanted: dict[str, set[int]]
) -> tuple[dict[str, dict[int, tuple[bytes, int]]], dict[str, int]]:
    """Per node: (root, position of the last leaf) at each wanted size, and the node's log size.
    A node's leaves are its own events and those from before node ids (engine.checkpoints.resume)."""
    ranges = {n: CompactRange() for n in wanted}
    roots: dict[str, dict[int, tuple[bytes, int]]] = {n: {} for n in wanted}
    upto = await high_water(engine)
    nodes = _node_of_each(engine, upto)
    position, node_id = 0, None
    async for ev in iterate(engine, EventFilter(upto_position=upto), page_size=_PAGE):
        while position < ev.position:
            position, node_id = await anext(nodes)
        leaf = leaf_hash(leaf_of(ev))
        for n, cr in ranges.items():
            if node_id is None or node_id == n:
                cr.append_hash(leaf)
                if cr.size in wanted[n]:
                    roots[n][cr.size] = (cr.root(), ev.position)
    return roots, {n: cr.size for n, cr in ranges.items()}


async def verify_cosignatures(engine: AsyncEngine, keys: list[WitnessKey], required: int) -> CosignatureReport:
    report = CosignatureReport(required, [k.name for k in keys])
    by_name = {k.name: k for k in keys}
    found: dict[str, list[tuple[int, bytes, str]]] = {}  # node -> (size, root, witness) of valid ones
    wrong: dict[str, list[str]] = {}
    for row in await cosigned.load(engine):
        key = by_name.get(row.witness)
        if key is None:
            continue
        try:
            root = bytes.fromhex(row.root)
            text = checkpoint_text(origin(row.node), row.size, root)
        except ValueError:
            wrong.setdefault(row.node, []).append(
                f"the kept cosignature of {row.witness} at size {row.size} is unreadable"
            )
            continue
        checked = check_line(row.line, key, text)
        if checked is None:
            continue  # another key of that name (before a witness's key rotation): not the one given
        report.checked += 1
        if not isinstance(checked, Cosignature):
            wrong.setdefault(row.node, []).append(f"at size {row.size}: {checked}")
            continue
        found.setdefault(row.node, []).append((row.size, root, row.witness))
    nodes = sorted(set(found) | set(wrong) | set(await _event_nodes(engine)))
    wanted = {n: {size for size, _, _ in found.get(n, [])} for n in nodes}
    roots, sizes = await _log_roots(engine, wanted)
    for n in nodes:
        nc = NodeCosignatures(n, sizes.get(n, 0), problems=list(wrong.get(n, [])))
        for size, root, witness in sorted(found.get(n, [])):
            at = roots[n].get(size)
            if at is None:
                nc.problems.append(
                    f"witness {witness} cosigned size {size} of node {n}'s log, which holds {nc.log_size} events: "
                    "the log was cut short, or the witness saw a longer one"
                )
            elif at[0] != root:
                nc.problems.append(
                    f"witness {witness} cosigned size {size} of node {n}'s log with root {root.hex()}, but the log's "
                    f"root at that size is {at[0].hex()}: the witness saw another log (a fork)"
                )
            else:
                nc.vouched[witness] = max(nc.vouched.get(witness, 0), size)
        largest = sorted(nc.vouched.values(), reverse=True)
        if required and len(largest) >= required:
            nc.quorum_size = largest[required - 1]
            nc.quorum_position = roots[n][nc.quorum_size][1]
        elif required:
            missing = [w for w in report.witnesses if w not in nc.vouched]
            nc.problems.append(
                f"only {len(largest)} of the {required} required witnesses vouch for node {n}'s log "
                f"({nc.log_size} events); " + "; ".join(f"witness {w}: no cosignature that checks out" for w in missing)
            )
        report.nodes.append(nc)
    if required and not nodes:
        report.unplaced.append(
            f"{required} witness(es) are required, but the log names no node and no cosignature is kept"
        )
    return report


async def _event_nodes(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(E.c.node_id).where(E.c.node_id.is_not(None)).distinct())
        return [str(r[0]) for r in rows]
