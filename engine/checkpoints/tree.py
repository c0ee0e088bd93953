"""The Merkle tree of RFC 9162 (Certificate Transparency 2.0, section 2.1) over the whole log.

Hashing is SHA-256 with the RFC's domain separation: a leaf is SHA-256(0x00 || data), an inner
node SHA-256(0x01 || left || right), and a tree of n leaves splits at the largest power of two
below n. Written here rather than taken from a library because the daemon needs only a compact
range (the O(log n) roots of the perfect subtrees that make up the tree, RFC 9162's "frontier"
in all but name) to keep the root current at each commit, and verification needs the proofs over
leaves it recomputes from rows; the functions are small and are held to the RFC test vectors of
the Certificate Transparency reference implementation (tests/audit/test_merkle.py).

Everything here is pure computation over bytes: no database, no clock, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) per RFC 9162


class ProofError(ValueError):
    """A proof or a compact range that cannot be right (wrong length, sizes out of range)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The roots of the perfect subtrees a tree of `size` leaves is made of, left to right (one
    per set bit of `size`). Appending costs one hash plus one per trailing set bit of the size
    (two on average) and the root is a fold of at most log2(size) nodes, so the daemon can keep
    the tree current at every commit and resume it from a checkpoint without the leaves."""

    __slots__ = ("size", "nodes")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()):
        if size < 0 or len(nodes) != bin(size).count("1") or any(len(n) != 32 for n in nodes):
            raise ProofError(
                f"a compact range of {size} leaves has {bin(max(size, 0)).count('1')} "
                f"nodes of 32 bytes, not {len(nodes)}"
            )
        self.size = size
        self.nodes = list(nodes)

    def append_hash(self, leaf: bytes) -> None:
        """Append a leaf given by its leaf hash (already prefixed with 0x00)."""
        node, size = leaf, self.size
        while size & 1:  # each trailing set bit is a perfect subtree the new one completes
            node = node_hash(self.nodes.pop(), node)
            size >>= 1
        self.nodes.append(node)
        self.size += 1

    def append(self, data: bytes) -> None:
        self.append_hash(leaf_hash(data))

    def extend(self, leaves: Iterable[bytes]) -> None:
        for data in leaves:
            self.append_hash(leaf_hash(data))

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        root = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            root = node_hash(node, root)
        return root

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.nodes)

    def to_hex(self) -> list[str]:
        return [n.hex() for n in self.nodes]

    @classmethod
    def from_hex(cls, size: int, nodes: Sequence[str]) -> CompactRange:
        try:
            raw = [bytes.fromhex(n) for n in nodes]
        except (TypeError, ValueError):
            raise ProofError("a compact range node is not hexadecimal") from None
        return cls(size, raw)


def tree_root(leaf_hashes: Sequence[bytes], lo: int = 0, hi: int | None = None) -> bytes:
    """MTH of leaf_hashes[lo:hi] (leaf hashes, already prefixed), in linear time."""
    hi = len(leaf_hashes) if hi is None else hi
    cr = CompactRange()
    for i in range(lo, hi):
        cr.append_hash(leaf_hashes[i])
    return cr.root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 section 2.1.3.1, from the leaf up."""
    if not 0 <= index < size <= len(leaf_hashes):
        raise ProofError(f"no leaf {index} in a tree of {size}")

    def path(m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return path(m, lo, lo + k) + [tree_root(leaf_hashes, lo + k, hi)]
        return path(m - k, lo + k, hi) + [tree_root(leaf_hashes, lo, lo + k)]

    return path(index, 0, size)


def consistency_proof(leaf_hashes: Sequence[bytes], old: int, new: int) -> list[bytes]:
    """PROOF(old, D[new]) of RFC 9162 section 2.1.4.1 (empty when old == new)."""
    if not 0 < old <= new <= len(leaf_hashes):
        raise ProofError(f"no consistency proof from a tree of {old} to one of {new}")

    def subproof(m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [tree_root(leaf_hashes, lo, hi)]
        k = _split(n)
        if m <= k:
            return subproof(m, lo, lo + k, whole) + [tree_root(leaf_hashes, lo + k, hi)]
        return subproof(m - k, lo + k, hi, False) + [tree_root(leaf_hashes, lo, lo + k)]

    return subproof(old, 0, new, True)


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a leaf hash and its inclusion proof lead to (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"no leaf {index} in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the path")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the path")
    return r


def consistent(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """Whether `proof` shows the tree of `new` leaves extends the one of `old` (RFC 9162 2.1.4.2)."""
    if not 0 < old <= new:
        return False
    if old == new:
        return not proof and old_root == new_root
    path = list(proof)
    if old & (old - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
