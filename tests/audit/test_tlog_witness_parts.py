"""The pieces of witness cosigning, each against something it cannot agree with by accident: the
witness written from the spec (tests/support/tlog_witness.py) held to the spec on a tree built here,
wingman's proofs from tiles held to the RFC's proofs from leaves, wingman's cosignature reader held
to lines the spec witness signs, and the config refusing keys that are not witness keys."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.tlog_client import naive_mth
from tests.support.tlog_witness import (
    Refused,
    SpecWitness,
    cosignatures_migration_round_trip,
    sign_log_note,
    vkey,
)
from wingman.engine.checkpoints.cosignature import WitnessKey, read_cosignatures
from wingman.engine.checkpoints.tile_proofs import consistency_from_tiles, root_from_tiles
from wingman.engine.checkpoints.tiles import TileTree
from wingman.engine.checkpoints.tree import consistency_proof, leaf_hash, tree_root
from wingman.engine.config import ConfigError, parse_config

ORIGIN = "example.test/log"


mth = naive_mth  # the RFC's Merkle Tree Hash, by its recursive definition


def rfc_proof(m: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1, straight from its definition."""

    def sub(m: int, d: list[bytes], whole: bool) -> list[bytes]:
        if m == len(d):
            return [] if whole else [mth(d)]
        k = 1 << ((len(d) - 1).bit_length() - 1)
        if m <= k:
            return sub(m, d[:k], whole) + [mth(d[k:])]
        return sub(m - k, d[k:], False) + [mth(d[:k])]

    return sub(m, leaves, True)


class Log:
    """A log built here: leaves, and its notes signed with its own key."""

    def __init__(self, leaves: list[bytes]):
        self.leaves, self.key = leaves, Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes_raw()
        self.vkey = vkey(ORIGIN, b"\x01" + raw)

    def note(self, size: int) -> str:
        text = f"{ORIGIN}\n{size}\n{base64.b64encode(mth(self.leaves[:size])).decode()}\n"
        return sign_log_note(text, ORIGIN, self.key)

    def body(self, old: int, size: int) -> str:
        proof = rfc_proof(old, self.leaves[:size]) if 0 < old < size else []
        return f"old {old}\n" + "".join(base64.b64encode(p).decode() + "\n" for p in proof) + "\n" + self.note(size)


def leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(b"\x00" + salt + i.to_bytes(4, "big")).digest() for i in range(n)]


def refused(w: SpecWitness, body: str) -> tuple[int, str]:
    with pytest.raises(Refused) as caught:
        w.add_checkpoint(body)
    return caught.value.status, caught.value.body


def test_the_spec_witness_cosigns_extensions_and_refuses_forks_and_strangers():
    log = Log(leaves(300))
    w = SpecWitness("witness.test/w", {ORIGIN: [log.vkey]})
    line = w.add_checkpoint(log.body(0, 5))
    assert w.latest[ORIGIN] == (5, mth(log.leaves[:5]))
    assert refused(w, log.body(0, 8)) == (409, "5\n")  # it cosigned 5
    for old, new in [(5, 8), (8, 8), (8, 256), (256, 300)]:
        w.add_checkpoint(log.body(old, new))
        assert w.latest[ORIGIN][0] == new
    # wingman's reader takes the witness's line for that note, and no other
    key = WitnessKey.parse(w.vkey)
    text5 = log.note(5).split("\n\n")[0] + "\n"
    good, wrong = read_cosignatures(line, key, text5)
    assert [c.witness for c in good] == ["witness.test/w"] and not wrong
    assert read_cosignatures(line, key, log.note(6).split("\n\n")[0] + "\n") == ([], [wrong_msg(key)])
    assert read_cosignatures(line, WitnessKey.parse(SpecWitness("witness.test/w").vkey), text5) == ([], [])

    fork = Log(log.leaves[:200] + leaves(150, b"fork"))
    fork.key = log.key  # the same log key signs another tree
    assert refused(w, fork.body(300, 350))[0] == 422
    assert refused(w, fork.body(300, 300))[0] == 422
    assert w.latest[ORIGIN] == (300, mth(log.leaves))  # unmoved by the fork
    assert refused(w, Log(log.leaves).body(300, 300))[0] == 403  # signed by a key it does not trust
    stranger = SpecWitness("witness.test/x")
    assert refused(stranger, log.body(0, 5))[0] == 404


def wrong_msg(key: WitnessKey) -> str:
    return f"the cosignature of {key.name} does not verify against its configured key"


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 1000, 65536 + 513])
def test_proofs_from_tiles_are_the_rfcs_proofs_from_leaves(size):
    entries = leaves(size)
    tree = TileTree()
    tree.entries += b"".join(entries)
    hashed = [leaf_hash(e) for e in entries]
    assert root_from_tiles(tree, size) == tree_root(hashed, 0, size)
    for old in sorted({1, size // 3 or 1, size // 2 or 1, max(size - 1, 1), size}):
        assert consistency_from_tiles(tree, old, size) == consistency_proof(hashed, old, size), (old, size)


def witnesses_config(*entries: dict) -> dict:
    return {"token": "t" * 32, "audit": {"witnesses": list(entries)}}


def test_the_config_refuses_what_is_not_a_witness_key():
    good = SpecWitness("witness.test/a").vkey
    config = parse_config(witnesses_config({"url": "https://w.test/prefix/", "key": good, "timeout": 3}))
    assert (
        config.audit.witnesses[0].url == "https://w.test/prefix" and config.audit.witnesses[0].name == "witness.test/a"
    )

    name, hex_id, b64 = good.split("+", 2)
    log_key = "wingman/n+" + hex_id + "+" + base64.b64encode(b"\x01" + bytes(32)).decode()
    for key, said in [
        ("not-a-key", "a witness key is <name>+<hex key id>+<base64 key>"),
        (f"{name}+{'0' * 8}+{b64}", "but its key's id is"),
        (f"{name}+{hex_id}+!!", "is not base64"),
        (log_key, "not an Ed25519 cosignature/v1 key"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse_config(witnesses_config({"url": "https://w.test", "key": key}))
        assert said in str(caught.value), str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config(witnesses_config({"url": "https://a.test", "key": good}, {"url": "https://b.test", "key": good}))
    assert "two witnesses are named witness.test/a" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config(witnesses_config({"url": "ftp://w.test", "key": good}))
    assert "http:// or https://" in str(caught.value)


async def test_migration_0009_both_ways_on_sqlite(tmp_path):
    assert await cosignatures_migration_round_trip(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}") == [True, False, True]


async def test_cosignatures_required_of_an_empty_log_are_missing_not_vacuous(tmp_path):
    from wingman.engine.checkpoints.cosigned_verify import verify_cosignatures
    from wingman.engine.store.database import create_engine, upgrade

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        await upgrade(engine)
        keys = [WitnessKey.parse(SpecWitness("witness.test/a").vkey)]
        assert (await verify_cosignatures(engine, keys, 0)).ok  # nothing asked, nothing wrong
        report = await verify_cosignatures(engine, keys, 1)
        assert not report.ok and "no cosignature is kept" in report.problems[0]
    finally:
        await engine.dispose()
