"""Where signed checkpoints are kept: the `checkpoints` table beside the log, and a JSON-lines file
that can live out of the database's reach (another disk, a mount only the daemon appends to).

The table holds every node's checkpoints, each node's a log of its own numbered by its own seq (key
(node_id, seq), migration 0008); the file holds one daemon's, so one node's.

Reading is lenient, like the store's reader of events: a row or a line an attacker edited into nonsense is
returned with the reason it cannot be read, so verification can name it instead of failing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import Row, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.checkpoints.format import BadCheckpoint, SignedCheckpoint, parse_body, parse_signed
from wingman.engine.store.schema import checkpoints as C

if TYPE_CHECKING:
    from wingman.engine.store.event_store import EventStore

HASH_BYTES = 32


@dataclass
class StoredCheckpoint:
    """One row of the table (or one line of the file): the checkpoint if it reads, else why not."""

    where: str  # "table seq 7" or "file line 12", for messages
    signed: SignedCheckpoint | None
    problem: str | None = None
    frontier: list[str] | None = None  # table only
    leaves: bytes | None = None  # table only
    row_seq: int | None = None  # the table's own seq column, readable even when the body is not
    row_node: str | None = None  # the table's node column (a file line: None)
    upto_position: int | None = None  # table only: the position of the last event it covers

    @property
    def node(self) -> str:
        """The node whose log it belongs to: the table's column, else the signed body's."""
        if self.row_node is not None:
            return self.row_node
        return self.signed.node if self.signed is not None else ""

    def leaf_list(self) -> list[bytes] | None:
        if self.leaves is None or len(self.leaves) % HASH_BYTES:
            return None
        return [self.leaves[i : i + HASH_BYTES] for i in range(0, len(self.leaves), HASH_BYTES)]


class CheckpointRow(TypedDict):
    """A row of the table, as `save` inserts it."""

    node_id: str
    seq: int
    size: int
    upto_position: int  # the log position of the last event it covers
    body: str  # the signed body's JSON
    signature: str
    frontier: list[str]
    leaves: bytes


def row(signed: SignedCheckpoint, frontier: list[str], leaves: bytes, upto_position: int) -> CheckpointRow:
    return {
        "node_id": signed.node,
        "seq": signed.seq,
        "size": signed.size,
        "upto_position": upto_position,
        "body": json.dumps(signed.body, sort_keys=True, separators=(",", ":")),
        "signature": signed.signature,
        "frontier": frontier,
        "leaves": leaves,
    }


async def save(store: EventStore, rows: list[CheckpointRow]) -> None:
    """Insert checkpoints in one transaction, through the log's writer (EventStore.write_beside)."""
    if rows:
        await store.write_beside([(insert(C), rows)])


async def has_table(engine: AsyncEngine) -> bool:
    """A database from before checkpoints existed (an old copy an auditor was given) has none."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: sa_inspect(c).has_table("checkpoints"))


async def _per_node(engine: AsyncEngine) -> bool:
    """A copy from before migration 0008 has no node column: its rows are one log over the whole log."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda c: "node_id" in {col["name"] for col in sa_inspect(c).get_columns("checkpoints")}
        )


def _stored(r: Row[*tuple[Any, ...]], leaves: bytes | None, per_node: bool) -> StoredCheckpoint:
    frontier = r.frontier if isinstance(r.frontier, list) else None
    node = r.node_id if per_node else None
    upto = r.upto_position if per_node else r.size
    where = f"checkpoints table, node {node}, seq {r.seq}" if node else f"checkpoints table, seq {r.seq}"
    found = StoredCheckpoint(where, None, None, frontier, leaves, r.seq, node, upto)
    try:
        found.signed = SignedCheckpoint(parse_body(json.loads(r.body)), r.signature)
    except (TypeError, ValueError) as exc:  # BadCheckpoint is a ValueError, like bad JSON
        found.problem = f"the row cannot be read as a checkpoint: {exc}"
        return found
    if found.signed.seq != r.seq or found.signed.size != r.size:
        found.problem = "the row's seq or size differs from its signed body"
    elif node is not None and found.signed.node != node:
        found.problem = f"the row is filed under node {node}, but its signed body names node {found.signed.node}"
    return found


async def load(engine: AsyncEngine, with_leaves: bool = True, node: str | None = None) -> list[StoredCheckpoint]:
    """Every checkpoint in the table (or one node's), by node and seq."""
    if not await has_table(engine):
        return []
    per_node = await _per_node(engine)
    cols = [C.c.seq, C.c.size, C.c.body, C.c.signature, C.c.frontier] + ([C.c.leaves] if with_leaves else [])
    q = select(*cols)
    if per_node:
        q = select(*cols, C.c.node_id, C.c.upto_position).order_by(C.c.node_id, C.c.seq)
        if node is not None:
            q = q.where(C.c.node_id == node)
    else:
        q = q.order_by(C.c.seq)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    found = [_stored(r, bytes(r.leaves) if with_leaves and r.leaves is not None else None, per_node) for r in rows]
    return found if per_node or node is None else [s for s in found if s.node == node]


async def latest(engine: AsyncEngine, node: str) -> StoredCheckpoint | None:
    """The node's latest checkpoint in the table."""
    if not await has_table(engine):
        return None
    async with engine.connect() as conn:
        q = select(C).where(C.c.node_id == node).order_by(C.c.seq.desc()).limit(1)
        r = (await conn.execute(q)).first()
    return _stored(r, bytes(r.leaves), True) if r is not None else None


def nodes_of(stored: list[StoredCheckpoint]) -> list[str]:
    """The nodes whose logs these checkpoints belong to, in order of first appearance."""
    return list(dict.fromkeys(s.node for s in stored))


# -- the file ----------------------------------------------------------------------------------


def append_lines(path: Path, signed: list[SignedCheckpoint]) -> None:
    """Append checkpoints as JSON lines and fsync them (blocking: run it in a thread). The file is
    opened for appending only, so a daemon can be given a file it may add to but not rewrite."""
    if not signed:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = "".join(cp.line() for cp in signed).encode("ascii")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: Path) -> list[StoredCheckpoint]:
    """Every line of a checkpoint file, in file order (blank lines skipped)."""
    out: list[StoredCheckpoint] = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                out.append(StoredCheckpoint(where, parse_signed(json.loads(raw))))
            except (ValueError, UnicodeDecodeError) as exc:
                if not raw.endswith(b"\n"):  # a last line cut short by a crash mid-write
                    exc = BadCheckpoint(f"the last line is incomplete ({exc})")
                out.append(StoredCheckpoint(where, None, f"not a signed checkpoint: {exc}"))
    return out


def last_seq_in_file(path: Path, node: str | None = None) -> int:
    """The seq of the file's last readable line (of `node`'s, when given; 0 for none), reading only
    its tail."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            fh.seek(max(0, end - 65536))
            tail = fh.read().splitlines()
    except OSError:  # none yet, or unreadable: the appends will say so
        return 0
    for raw in reversed(tail):
        try:
            signed = parse_signed(json.loads(raw))
        except (ValueError, UnicodeDecodeError):
            continue
        if node is None or signed.node == node:
            return signed.seq
    return 0
