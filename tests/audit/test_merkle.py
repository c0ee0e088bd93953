"""The RFC 9162 tree (engine.checkpoints.tree) against the test vectors of the Certificate Transparency
reference implementation (transparency-dev/merkle, testonly and proof packages: eight leaves, the
root of every prefix, the compact ranges, known inclusion and consistency proofs), and against the
RFC's recursive definitions on every small size."""

from __future__ import annotations

import hashlib

import pytest

from wingman.engine.checkpoints.tree import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    consistent,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    tree_root,
)

h = bytes.fromhex
LEAVES = [
    h(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
ROOTS = [
    h(x)
    for x in (  # root of the first n leaves, n = 1..8
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
NODE = {  # (level, index) -> hash, the complete subtrees of the eight-leaf tree
    (0, 2): "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    (0, 4): "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    (0, 6): "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    (1, 0): "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    (1, 2): "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    (2, 0): "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    (3, 0): "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
COMPACT = {
    1: [],
    2: [(1, 0)],
    3: [(1, 0), (0, 2)],
    4: [(2, 0)],
    5: [(2, 0), (0, 4)],
    6: [(2, 0), (1, 2)],
    7: [(2, 0), (1, 2), (0, 6)],
    8: [(3, 0)],
}
INCLUSION = [  # (leaf index, tree size, proof)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
HASHED = [leaf_hash(x) for x in LEAVES]


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162's MTH, straight from its recursive definition (the reference for the fast code)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def test_prefixes_are_the_rfc_ones():
    assert leaf_hash(b"") == h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert node_hash(HASHED[0], HASHED[1]) == ROOTS[1]
    assert CompactRange().root() == EMPTY_ROOT == h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_roots_and_compact_ranges_of_every_prefix():
    cr = CompactRange()
    for n, data in enumerate(LEAVES, start=1):
        cr.append(data)
        assert cr.root() == ROOTS[n - 1] == tree_root(HASHED[:n]) == mth(LEAVES[:n])
        want = [h(NODE[k]) for k in COMPACT[n]] if n > 1 else [HASHED[0]]
        assert cr.nodes == want
        again = CompactRange.from_hex(n, cr.to_hex())
        assert again.root() == cr.root()


@pytest.mark.parametrize("index,size,proof", INCLUSION)
def test_inclusion_vectors(index, size, proof):
    assert inclusion_proof(HASHED, index, size) == [h(p) for p in proof]
    assert root_from_inclusion(index, size, HASHED[index], [h(p) for p in proof]) == ROOTS[size - 1]


@pytest.mark.parametrize("old,new,proof", CONSISTENCY)
def test_consistency_vectors(old, new, proof):
    assert consistency_proof(HASHED, old, new) == [h(p) for p in proof]
    assert consistent(old, new, ROOTS[old - 1], ROOTS[new - 1], [h(p) for p in proof])


def test_every_small_tree_against_the_recursive_definition():
    data = [i.to_bytes(2, "big") for i in range(40)]
    hashed = [leaf_hash(d) for d in data]
    for n in range(1, 41):
        root = mth(data[:n])
        assert tree_root(hashed, 0, n) == root
        for i in range(n):
            assert root_from_inclusion(i, n, hashed[i], inclusion_proof(hashed, i, n)) == root
        for m in range(1, n + 1):
            assert consistent(m, n, mth(data[:m]), root, consistency_proof(hashed, m, n))


def test_corrupted_proofs_fail():
    proof = [h(p) for p in INCLUSION[0][2]]
    for bad in ([*proof[:-1]], [*proof, proof[0]], [proof[0][:1] + b"\xff" + proof[0][2:], *proof[1:]]):
        try:
            assert root_from_inclusion(0, 8, HASHED[0], bad) != ROOTS[7]
        except ProofError:
            pass
    assert root_from_inclusion(1, 8, HASHED[0], proof) != ROOTS[7]  # wrong index
    cproof = [h(p) for p in CONSISTENCY[2][2]]
    assert not consistent(6, 8, ROOTS[4], ROOTS[7], cproof)  # wrong old root
    assert not consistent(6, 8, ROOTS[7], ROOTS[5], cproof)  # swapped roots
    assert not consistent(6, 8, ROOTS[5], ROOTS[7], cproof[:-1])
    assert not consistent(6, 8, ROOTS[5], ROOTS[7], [*cproof, ROOTS[7]])
    assert not consistent(5, 8, ROOTS[5], ROOTS[7], cproof)
    assert not consistent(8, 6, ROOTS[7], ROOTS[5], cproof)
    with pytest.raises(ProofError):
        CompactRange(3, [HASHED[0]])
