"""Key rotation seen by a transparency-log client (issue 32, docs/checkpoints.md): after
`POST /api/audit/key/rotate` on a real daemon, the JSON checkpoint signed by the old key announces
the new one; the served note is signed by the new key only (a client holding the old verifier key
refuses it, one given the announced key opens it); and the tree goes on: a checkpoint after the
rotation is consistent with one before it, by proofs from the tiles. The client is the one written
from the specs in tests/audit/test_tlog_verifier.py; verifier keys are built here from the spec."""

from __future__ import annotations

import json

import pytest

from tests.support.daemon import AUDIT_TOKEN, definition
from tests.support.tlog_client import (
    NoteRefused,
    TileClient,
    VKey,
    consistent,
    log_vkey,
    open_checkpoint,
    parse_verifier_key,
)
from tests.support.waiting import eventually

PREFIX = "/api/audit"
NODE = "rotating-node"


def _vkey_text(public_key_b64: str) -> str:
    return log_vkey(NODE, public_key_b64)


def _vkey(public_key_b64: str) -> VKey:
    return parse_verifier_key(_vkey_text(public_key_b64))


def test_a_rotation_is_a_new_verifier_key_announced_by_the_old_and_the_tree_goes_on(daemon_process):
    server = definition()
    uuid = server["settings"]["uuid"]
    audit = {"node_id": NODE, "checkpoint_every_events": 1, "checkpoint_every_seconds": 0.2}
    d = daemon_process(servers=[server], audit=audit)

    def power(action: str) -> None:
        with d.client() as owner:
            op = owner.post(f"/api/servers/{uuid}/power", json={"action": action}).json()
            assert d.wait_operation(op["id"])["status"] == "succeeded"

    def fetch(c):
        def get(path: str) -> bytes:
            r = c.get(f"{PREFIX}/tile/{path}")
            assert r.status_code == 200, (path, r.text)
            return r.content

        return get

    power("start")
    with d.client(AUDIT_TOKEN) as c:
        first_key = c.get(f"{PREFIX}/key").json()["public_key"]

        def signed_by_first() -> tuple[int, bytes] | None:
            _, size, root = open_checkpoint(c.get(f"{PREFIX}/checkpoint").text, [_vkey(first_key)])
            return (size, root) if size > 0 else None

        old_size, old_root = eventually(signed_by_first, 30, "a note signed by the first key")

    with d.client() as owner:
        rotated = owner.post(f"{PREFIX}/key/rotate")
        assert rotated.status_code == 200, rotated.text
        old_key, new_key = rotated.json()["old_key"], rotated.json()["new_key"]
    assert old_key == first_key != new_key

    power("stop")
    with d.client(AUDIT_TOKEN) as c:
        assert c.get(f"{PREFIX}/key").json()["public_key"] == new_key

        def grown_under_new_key() -> tuple[int, bytes, str] | None:
            r = c.get(f"{PREFIX}/checkpoint")
            _, size, root = open_checkpoint(r.text, [_vkey(new_key)])
            return (size, root, r.text) if size > old_size else None

        new_size, new_root, note = eventually(grown_under_new_key, 30, "a note of the grown log signed by the new key")
        assert c.get(f"{PREFIX}/checkpoint").headers["wingman-verifier-key"] == _vkey_text(new_key)
        with pytest.raises(NoteRefused):  # a client still holding the old key does not take it
            open_checkpoint(note, [_vkey(first_key)])

        # one tree across the rotation: the later root extends the earlier one
        tiles = TileClient(fetch(c), new_size)
        assert tiles.mth(0, new_size) == new_root
        assert consistent(old_size, new_size, old_root, new_root, tiles.consistency(old_size, new_size))

        verdict = c.get(f"{PREFIX}/verify").json()
        assert verdict["ok"], verdict

    # the JSON checkpoint signed by the old key names the new one: the line an auditor follows from key to key
    lines = [
        json.loads(line)["checkpoint"] for line in (d.folder / "var" / "checkpoints.jsonl").read_text().splitlines()
    ]
    announcing = [cp for cp in lines if cp.get("next_key")]
    assert [(cp["key"], cp["next_key"]) for cp in announcing] == [(first_key, new_key)]
    assert all(cp["key"] == new_key for cp in lines[lines.index(announcing[0]) + 1 :])
