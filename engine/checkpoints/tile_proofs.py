"""RFC 9162 consistency proofs computed from a TileTree's tiles instead of from every leaf.

tree.consistency_proof hashes every leaf of the new tree (each subtree root is a fold of its
leaves): at a million events that is two million SHA-256 per proof, too much to do for every
checkpoint a witness is sent. Here each subtree root is assembled from perfect subtrees, and a
perfect subtree of height 8L + b is the fold of 2**b hashes of a level-L tile, whose full tiles
the TileTree keeps once computed: after the first proof (which fills the full tiles, once), a proof
costs a few partial tiles at the tree's right edge and O(log² n) hashes.

Pure computation on a TileTree (blocking: call it off the event loop).
"""

from __future__ import annotations

from wingman.engine.checkpoints.tiles import WIDTH, TilePath, TileTree
from wingman.engine.checkpoints.tree import EMPTY_ROOT, ProofError, node_hash


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _fold(hashes: list[bytes]) -> bytes:
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


class _Subtrees:
    """Subtree roots of the first `size` leaves of a TileTree, from its tiles."""

    def __init__(self, tree: TileTree, size: int):
        self.tree, self.size = tree, size
        self._tiles: dict[tuple[int, int], bytes] = {}  # the tiles read for this proof (partial ones too)

    def _tile(self, level: int, index: int) -> bytes:
        if (level, index) not in self._tiles:
            width = min(WIDTH, self.size // WIDTH**level - index * WIDTH)  # the widest tile `size` covers
            self._tiles[(level, index)] = self.tree.tile(TilePath(level, index, None if width == WIDTH else width))
        return self._tiles[(level, index)]

    def perfect(self, height: int, k: int) -> bytes:
        """The root of the 2**height leaves from leaf k * 2**height."""
        level, below = divmod(height, 8)
        first = k << below  # its first hash among the level's hashes
        tile = self._tile(level, first // WIDTH)
        at = 32 * (first % WIDTH)
        return _fold([tile[i : i + 32] for i in range(at, at + 32 * (1 << below), 32)])

    def root(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi])."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            return self.perfect(n.bit_length() - 1, lo // n)
        k = _split(n)
        return node_hash(self.root(lo, lo + k), self.root(lo + k, hi))


def consistency_from_tiles(tree: TileTree, old: int, new: int) -> list[bytes]:
    """PROOF(old, D[new]) of RFC 9162 section 2.1.4.1 (empty when old == new)."""
    if not 0 < old <= new <= tree.size:
        raise ProofError(f"no consistency proof from a tree of {old} to one of {new} (the tree holds {tree.size})")
    sub = _Subtrees(tree, new)

    def subproof(m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [sub.root(lo, hi)]
        k = _split(n)
        if m <= k:
            return subproof(m, lo, lo + k, whole) + [sub.root(lo + k, hi)]
        return subproof(m - k, lo + k, hi, False) + [sub.root(lo, lo + k)]

    return subproof(old, 0, new, True)


def root_from_tiles(tree: TileTree, size: int) -> bytes:
    """MTH(D[0:size]) (the signed root a proof must lead to)."""
    return _Subtrees(tree, size).root(0, size)
