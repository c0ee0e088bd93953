"""Tampering by someone who can write the database, on real files a real daemon wrote with many
signed checkpoints: each edit is found by `wingman audit verify --key`, which names the first bad
position, where the per-stream hash chains alone say nothing."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.checkpoints import build_signed_log, checkpoint_rows, forge_actor, rows, sql, verdict
from wingman.engine.checkpoints.format import canonical, encode_key, sign


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return asyncio.run(build_signed_log(tmp_path_factory.mktemp("signed"), total=300, servers=3, every_events=25))


@pytest.fixture
def log(pristine, tmp_path):
    return pristine.copy(tmp_path)


def first_problem(doc: dict) -> dict:
    return doc["checkpoints"]["first_problem"]


def test_a_clean_log_with_many_checkpoints_verifies(log):
    assert len(checkpoint_rows(log.db)) >= 10
    for with_file in (False, True):
        code, doc, text = verdict(log, key=log.key, with_file=with_file)
        assert code == 0, text
        cp = doc["checkpoints"]
        assert doc["ok"] and cp["ok"] and cp["log_size"] == 300 and cp["covered_up_to_position"] == 300
        assert cp["checkpoints_believed"] == len(checkpoint_rows(log.db)) and cp["not_yet_covered"] == 0
        assert cp["in_file"] == (cp["checkpoints"] if with_file else None)
        assert "the log reproduces every one" in text and "PROBLEM" not in text


def test_forged_actor_with_recomputed_hashes(log):
    """The issue's first attack: the old verification says OK, the checkpoints do not."""
    stream = log.ids[1]
    forged = forge_actor(log.db, stream)
    code, doc, text = verdict(log, key=log.key)
    assert doc["hash_chains_ok"], "the per-stream chains were recomputed: they cannot see it"
    assert code == 1 and not doc["ok"]
    assert doc["checkpoints"]["first_bad_position"] == forged["position"]
    assert first_problem(doc)["check"] == "root"
    assert f"position {forged['position']}" in text and "PROBLEM" in text


def test_tail_deleted(log):
    sql(log.db, ("DELETE FROM events WHERE position > 296", ()))
    code, doc, text = verdict(log, key=log.key)
    assert code == 1 and doc["hash_chains_ok"]
    fp = first_problem(doc)
    assert (fp["check"], fp["position"]) == ("truncation", 297)
    assert "positions 297 to 300 were removed" in text


def test_tail_deleted_with_its_checkpoints_is_found_by_the_file(log):
    """The attacker also drops the checkpoints that cover the tail: the file outside the
    database still holds them."""
    last = checkpoint_rows(log.db)[-2]
    sql(
        log.db,
        ("DELETE FROM events WHERE position > ?", (last["size"],)),
        ("DELETE FROM checkpoints WHERE seq > ?", (last["seq"],)),
    )
    code, doc, _ = verdict(log, key=log.key)
    assert code == 0, "without the file, the cut is invisible: only not-yet-covered events are gone"
    code, doc, text = verdict(log, key=log.key, with_file=True)
    assert code == 1
    checks = {p["check"] for p in doc["checkpoints"]["problems"]}
    assert {"truncation", "copies"} <= checks
    assert doc["checkpoints"]["first_bad_position"] == last["size"] + 1


def test_whole_stream_deleted(log):
    gone = log.ids[2]
    first = rows(log.db, "stream_id = ?", (gone,))[0]
    sql(log.db, ("DELETE FROM events WHERE stream_id = ?", (gone,)))
    code, doc, text = verdict(log, key=log.key)
    assert code == 1 and doc["hash_chains_ok"]
    assert doc["checkpoints"]["first_bad_position"] == first["position"]
    assert first_problem(doc)["check"] == "gap"


def test_whole_stream_deleted_and_positions_renumbered(log):
    gone = log.ids[2]
    first = rows(log.db, "stream_id = ?", (gone,))[0]
    keep = [r["position"] for r in rows(log.db, "stream_id != ?", (gone,))]
    sql(
        log.db,
        ("DELETE FROM events WHERE stream_id = ?", (gone,)),
        *[("UPDATE events SET position = ? WHERE position = ?", (-(i + 1), p)) for i, p in enumerate(keep)],
        ("UPDATE events SET position = -position", ()),
    )
    code, doc, _ = verdict(log, key=log.key)
    assert code == 1 and doc["hash_chains_ok"]
    assert doc["checkpoints"]["first_bad_position"] == first["position"]
    assert first_problem(doc)["check"] in ("root", "truncation")


def test_two_events_of_different_servers_swapped(log):
    evs = rows(log.db)
    i = next(i for i in range(100, 299) if evs[i]["stream_id"] != evs[i + 1]["stream_id"])
    a, b = evs[i], evs[i + 1]
    sql(
        log.db,
        ("UPDATE events SET position = -1 WHERE position = ?", (a["position"],)),
        ("UPDATE events SET position = ? WHERE position = ?", (a["position"], b["position"])),
        ("UPDATE events SET position = ? WHERE position = -1", (b["position"],)),
    )
    code, doc, _ = verdict(log, key=log.key)
    assert doc["hash_chains_ok"], "each stream's order is unchanged"
    assert code == 1 and doc["checkpoints"]["first_bad_position"] == a["position"]


def _resign_table(db, key: Ed25519PrivateKey) -> None:
    """Every checkpoint row re-signed with another key (roots left as they were: only the signer
    changes), as an attacker who replaces the table would."""
    updates = []
    for cp in checkpoint_rows(db):
        body = json.loads(cp["body"]) | {"key": encode_key(key.public_key())}
        signed = sign(key, body)
        updates.append(
            (
                "UPDATE checkpoints SET body = ?, signature = ? WHERE seq = ?",
                (json.dumps(signed.body), signed.signature, cp["seq"]),
            )
        )
    sql(db, *updates)


def test_checkpoint_table_replaced_by_another_key(log):
    other = Ed25519PrivateKey.generate()
    forge_actor(log.db, log.ids[0])
    _resign_table(log.db, other)
    code, doc, text = verdict(log, key=log.key)
    assert code == 1 and doc["hash_chains_ok"]
    fp = first_problem(doc)
    assert (fp["check"], fp["position"]) == ("key", 1)
    assert encode_key(other.public_key()) in fp["problem"]
    assert doc["checkpoints"]["checkpoints_believed"] == 0 and doc["checkpoints"]["not_yet_covered"] == 300
    # With the attacker's own key everything would "verify": the key must come from elsewhere.
    assert verdict(log, key=encode_key(other.public_key()))[1]["checkpoints"]["first_problem"]["check"] == "root"


def test_edited_checkpoint_row_is_refused(log):
    cp = checkpoint_rows(log.db)[3]
    body = json.loads(cp["body"])
    body["size"] -= 1
    sql(
        log.db, ("UPDATE checkpoints SET body = ?, size = ? WHERE seq = ?", (json.dumps(body), body["size"], cp["seq"]))
    )
    code, doc, _ = verdict(log, key=log.key)
    assert code == 1
    assert any(p["check"] == "signature" and p["checkpoint_seq"] == cp["seq"] for p in doc["checkpoints"]["problems"])


def test_unannounced_rotation_is_refused(log):
    """A checkpoint signed by a new key that no checkpoint of the old key announced."""
    last = checkpoint_rows(log.db)[-1]
    intruder = Ed25519PrivateKey.generate()
    body = json.loads(last["body"]) | {"seq": last["seq"] + 1, "key": encode_key(intruder.public_key())}
    signed = sign(intruder, body)
    sql(
        log.db,
        (
            "INSERT INTO checkpoints (node_id, seq, size, body, signature, frontier, leaves) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (signed.node, signed.seq, signed.size, json.dumps(signed.body), signed.signature, last["frontier"], b""),
        ),
    )
    code, doc, _ = verdict(log, key=log.key)
    assert code == 1
    refused = [p for p in doc["checkpoints"]["problems"] if p["check"] == "key"]
    assert refused and refused[0]["checkpoint_seq"] == signed.seq and "did not announce" in refused[0]["problem"]


def test_forged_history_and_forged_kept_leaves(log):
    """The attacker rewrites events and also the leaves kept with the checkpoints (so they match
    the forgery): the kept leaves no longer lead to the signed root, so the finding still names
    the range the signature covers."""
    stream = log.ids[0]
    forged = forge_actor(log.db, stream)
    leaves = [bytes.fromhex(r["hash"]) for r in rows(log.db)]
    prev = 0
    updates = []
    for cp in checkpoint_rows(log.db):
        updates.append(
            ("UPDATE checkpoints SET leaves = ? WHERE seq = ?", (b"".join(leaves[prev : cp["size"]]), cp["seq"]))
        )
        prev = cp["size"]
    sql(log.db, *updates)
    code, doc, _ = verdict(log, key=log.key)
    assert code == 1
    cps = checkpoint_rows(log.db)
    covering = next(c for c in cps if c["size"] >= forged["position"])
    before = max([c["size"] for c in cps if c["size"] < forged["position"]], default=0)
    assert doc["checkpoints"]["first_bad_position"] == before + 1 <= forged["position"] <= covering["size"]


def test_signed_format_is_what_the_readme_says(log):
    """The signature is over json.dumps(body, sort_keys=True, separators=(",", ":"))."""
    line = json.loads(log.file.read_text().splitlines()[0])
    body = line["checkpoint"]
    assert canonical(body) == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert set(body) == {"format", "seq", "size", "root", "time", "node", "key"}
    assert body["node"] == "test-node" and body["key"] == log.key and len(base64.b64decode(line["signature"])) == 64


def test_bad_key_or_checkpoint_file_is_bad_input(log, tmp_path):
    from tests.support.checkpoints import runner
    from wingman.api.cli.main import app

    for args, words in (
        (["--key", "not-a-key"], "--key"),
        (["--key", "AAAA"], "--key"),
        (["--checkpoints", str(tmp_path / "missing.jsonl")], "does not exist"),
    ):
        r = runner.invoke(app, ["audit", "verify", "--database", str(log.db), *args])
        assert r.exit_code == 2 and words in r.output, r.output
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"checkpoint": {"format": "nope"}, "signature": "x"}\nnot json\n')
    code, doc, _ = verdict(log, "--checkpoints", str(garbage), key=log.key)
    assert code == 1 and [p["check"] for p in doc["checkpoints"]["problems"]][:2] == ["checkpoint", "checkpoint"]
