"""The C2SP client of tests/support/tlog_client.py, written from the specs alone, held to the RFC's
algorithms on a tree built here: a verifier that accepted anything would fail these."""

from __future__ import annotations

import pytest

from tests.support.tlog_client import (
    TileClient,
    TileRefused,
    consistent,
    index_path,
    leaf,
    naive_mth,
    node,
    root_from_inclusion,
    spec_tiles,
)


@pytest.mark.parametrize("size", [1, 7, 256, 257, 600, 65536 + 300])
def test_the_tile_client_agrees_with_the_rfc_on_a_tree_built_here(size):
    leaves = [leaf(i.to_bytes(4, "big")) for i in range(size)]
    tiles = spec_tiles(leaves)
    client = TileClient(tiles.__getitem__, size)
    root = naive_mth(leaves)
    assert client.mth(0, size) == root
    for m in {0, size // 3, size - 1}:
        assert root_from_inclusion(m, size, leaves[m], client.inclusion(m, size)) == root
        assert root_from_inclusion(m, size, leaf(b"another"), client.inclusion(m, size)) != root
    for m in {1, size // 2 or 1, size}:
        old = naive_mth(leaves[:m])
        assert consistent(m, size, old, root, client.consistency(m, size))
        assert not consistent(m, size, node(old, old), root, client.consistency(m, size))


@pytest.mark.parametrize(
    ("path", "changed_hash", "index"), [("1/000.p/2", 1, 300), ("0/001", 45, 300), ("0/002.p/88", 9, 520)]
)
def test_the_tile_client_refuses_a_changed_tile(path, changed_hash, index):
    leaves = [leaf(i.to_bytes(4, "big")) for i in range(600)]
    tiles, root = spec_tiles(leaves), naive_mth(leaves)
    at = 32 * changed_hash
    tiles[path] = tiles[path][:at] + bytes([tiles[path][at] ^ 1]) + tiles[path][at + 1 :]
    client = TileClient(tiles.__getitem__, 600)
    try:  # a tile refused, or a root or an inclusion that is not the signed root
        caught = (
            client.mth(0, 600) != root
            or root_from_inclusion(index, 600, leaves[index], client.inclusion(index, 600)) != root
        )
    except TileRefused:
        caught = True
    assert caught


def test_index_paths():
    assert index_path(1234067) == "x001/x234/067"
    assert index_path(5) == "005"
    assert index_path(1000) == "x001/000"
