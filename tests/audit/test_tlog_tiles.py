"""wingman's tiles (engine.checkpoints.tiles.TileTree) against the tlog-tiles formula computed in
the test (tests/audit/test_tlog_verifier.py's spec_tiles: tile n of level l is MTH(D[(n*256+i) *
256**l : (n*256+i+1) * 256**l]) for i < 256), every tile of trees up to a level-2 one, and the
entry bundles; the daemon's routes serve these (tests/audit/test_tlog_daemon.py)."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.tlog_client import leaf, spec_tiles
from wingman.engine.checkpoints.tiles import NoTile, TileTree, parse_tile_path


def tree_of(size: int) -> tuple[TileTree, list[bytes]]:
    entries = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    t = TileTree()
    for e in entries:
        t.entries += e
    return t, entries


@pytest.mark.parametrize("size", [1, 255, 256, 257, 600, 65536 + 300])
def test_every_tile_is_the_specs(size):
    tree, entries = tree_of(size)
    expected = spec_tiles([leaf(e) for e in entries])
    assert expected  # the formula gives at least a level-0 tile
    for path, body in expected.items():
        assert tree.tile(parse_tile_path(path)) == body, path
    assert tree.tile(parse_tile_path("0/000" if size >= 256 else f"0/000.p/{size}"))[:32] == leaf(entries[0])


def test_entry_bundles_hold_the_event_hashes():
    tree, entries = tree_of(600)
    bundle = tree.tile(parse_tile_path("entries/002.p/88"))
    assert bundle == b"".join(b"\x00\x20" + e for e in entries[512:600])
    assert len(tree.tile(parse_tile_path("entries/001"))) == 256 * 34


@pytest.mark.parametrize("path", ["0/003", "0/002", "0/002.p/89", "1/000", "1/000.p/3", "2/000.p/1", "entries/002"])
def test_no_tile_past_the_tree(path):
    tree, _ = tree_of(600)
    with pytest.raises(NoTile):
        tree.tile(parse_tile_path(path))
