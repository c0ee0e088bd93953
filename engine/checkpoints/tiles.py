"""The node's Merkle tree served as C2SP `tlog-tiles` (c2sp.org/tlog-tiles): hash tiles of height
8 and entry bundles, from which a client computes any inclusion or consistency proof itself.

The tree is the checkpointer's: its leaves are the node's events in position order (resume.mine),
each leaf SHA-256(0x00 || event hash) over the event hash the row stores, as the checkpointer
hashes them on commit. The log entry of a leaf is therefore its 32-byte event hash, and the entry
bundles carry those (uint16 length 32, then the hash), so a client can check a level-0 tile from
them; the events themselves are at the audit API.

Only what the latest signed checkpoint covers is served: a tile (full or partial) whose hashes
span leaves past its size is refused, so every tile served is fixed by a signed root. Tiles are
pure functions of the leaves, so full ones are cached; the leaf hashes are kept in memory (32 bytes
per event) and read from the store only past the last one read.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.checkpoints.resume import mine
from wingman.engine.checkpoints.tree import leaf_hash, node_hash
from wingman.engine.store.schema import events as E

WIDTH = 256  # hashes in a full tile: a subtree of height 8
_PAGE = 20000
T = TypeVar("T")
_TILE_PATH = re.compile(
    r"(?P<level>entries|0|[1-9][0-9]?)/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})(?:\.p/(?P<w>[1-9][0-9]{0,2}))?\Z"
)


class NoTile(LookupError):
    """No such tile (a malformed path, or hashes the latest signed checkpoint does not cover)."""


@dataclass(frozen=True)
class TilePath:
    level: int | None  # None: an entry bundle
    index: int
    width: int | None  # None: a full tile


def parse_tile_path(path: str) -> TilePath:
    """`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, N as 3-digit elements all but the last `x`-led."""
    m = _TILE_PATH.match(path)
    if m is None:
        raise NoTile(f"not a tile path: {path!r}")
    level = None if m["level"] == "entries" else int(m["level"])
    width = None if m["w"] is None else int(m["w"])
    if (level is not None and level > 63) or (width is not None and width > WIDTH - 1):
        raise NoTile(f"not a tile path: {path!r}")
    return TilePath(level, int(m["index"].replace("x", "").replace("/", "")), width)


def tile_path(level: int | None, index: int, width: int | None = None) -> str:
    """The path of a tile (level None: an entry bundle), as the spec spells it."""
    digits = f"{index:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    parts = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    n = "/".join([f"x{p}" for p in parts[:-1]] + parts[-1:])
    return f"{'entries' if level is None else level}/{n}" + ("" if width is None else f".p/{width}")


def _perfect_root(hashes: list[bytes]) -> bytes:
    """The root of a perfect subtree over `hashes` (a power of two of them)."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


class TileTree:
    """The tiles of a tree given its entries (the leaves' event hashes), in order. Pure computation;
    full tiles, which never change, are kept once computed."""

    def __init__(self) -> None:
        self.entries = bytearray()  # 32 bytes per leaf
        self._full: dict[tuple[int, int], bytes] = {}

    @property
    def size(self) -> int:
        return len(self.entries) // 32

    def _entry(self, i: int) -> bytes:
        return bytes(self.entries[32 * i : 32 * i + 32])

    def _hashes(self, level: int, index: int, width: int) -> bytes:
        if width == WIDTH and (level, index) in self._full:
            return self._full[(level, index)]
        if level == 0:
            body = b"".join(leaf_hash(self._entry(index * WIDTH + i)) for i in range(width))
        else:  # each hash is the root of a full tile below, itself kept
            below = [self._hashes(level - 1, index * WIDTH + i, WIDTH) for i in range(width)]
            body = b"".join(_perfect_root([t[j : j + 32] for j in range(0, len(t), 32)]) for t in below)
        if width == WIDTH:
            self._full[(level, index)] = body
        return body

    def tile(self, path: TilePath) -> bytes:
        """The tile's bytes: hashes, or an entry bundle (uint16 length, then the entry)."""
        level, width = path.level or 0, path.width or WIDTH
        if (path.index * WIDTH + width) * WIDTH**level > self.size:
            raise NoTile(f"tile {tile_path(path.level, path.index, path.width)} spans leaves past {self.size}")
        if path.level is None:
            start = path.index * WIDTH
            return b"".join(b"\x00\x20" + self._entry(start + i) for i in range(width))
        return self._hashes(level, path.index, width)


class TileLog:
    """One node's tree as tiles, up to the size of its latest signed checkpoint."""

    def __init__(self, engine: AsyncEngine, node: str | None):
        self.engine, self.node = engine, node
        self.tree = TileTree()
        self._after = 0  # the position of the last leaf read
        self._lock = asyncio.Lock()

    async def _read_to(self, size: int) -> None:
        while self.tree.size < size:
            q = (
                select(E.c.position, E.c.hash)
                .where(E.c.position > self._after, mine(self.node))
                .order_by(E.c.position)
                .limit(_PAGE)
            )
            async with self.engine.connect() as conn:
                rows = (await conn.execute(q)).all()
            if not rows:
                raise NoTile(f"the log holds {self.tree.size} of this node's events, not {size}")
            for position, stored in rows:
                self.tree.entries += bytes.fromhex(stored)
                self._after = position

    async def tile(self, path: TilePath, signed_size: int) -> bytes:
        """The tile's bytes, when `signed_size` leaves cover it."""
        end = (path.index * WIDTH + (path.width or WIDTH)) * WIDTH ** (path.level or 0)  # past its last leaf
        if end > signed_size:
            raise NoTile(
                f"tile {tile_path(path.level, path.index, path.width)} spans leaves past the {signed_size} signed"
            )
        async with self._lock:
            await self._read_to(end)
            # A first tile of a high level hashes every leaf under it (16M at level 2): off the loop.
            return await asyncio.to_thread(self.tree.tile, path)

    async def compute(self, size: int, fn: Callable[[TileTree], T]) -> T:
        """`fn(tree)` off the event loop once the tree holds `size` leaves, one at a time with the
        tiles served (engine.checkpoints.tile_proofs computes witnesses' proofs this way)."""
        async with self._lock:
            await self._read_to(size)
            return await asyncio.to_thread(fn, self.tree)
