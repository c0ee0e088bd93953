"""A real `wingman serve` publishing its checkpoints and tree in the C2SP formats, fetched over
HTTP with an audit token and checked by the client written from the specs in
tests/audit/test_tlog_verifier.py (none of wingman's code): the note verifies with the verifier key
built from the key the daemon serves, the root recomputed from tiles is the signed one, an event
read from the API is included, a later checkpoint is consistent with an earlier one, and a changed
tile or note is refused."""

from __future__ import annotations

import asyncio
import hashlib
import shutil

import pytest

from tests.support.checkpoints import build_signed_log
from tests.support.daemon import AUDIT_TOKEN, definition
from tests.support.tlog_client import (
    NoteRefused,
    TileClient,
    TileRefused,
    consistent,
    event_hash,
    leaf,
    log_vkey,
    open_checkpoint,
    parse_verifier_key,
    root_from_inclusion,
)
from tests.support.waiting import eventually

NODE = "test-node"  # the node id tests.support.checkpoints signs with
PREFIX = "/api/audit"


def vkey_of(public_key_b64: str) -> str:
    return log_vkey(NODE, public_key_b64)


@pytest.fixture(scope="module")
def signed_folder(tmp_path_factory):
    """600 events signed by a node (more than two full level-0 tiles)."""
    folder = tmp_path_factory.mktemp("tlog")
    asyncio.run(build_signed_log(folder, total=600, servers=3, every_events=100))
    return folder


@pytest.fixture
def live(signed_folder, daemon_process, tmp_path):
    shutil.copytree(signed_folder / "var", tmp_path / "live" / "var")
    audit = {"node_id": NODE, "checkpoint_every_events": 1, "checkpoint_every_seconds": 0.2}
    return daemon_process(servers=[definition()], folder=tmp_path / "live", audit=audit)


def fetcher(client):
    def fetch(path: str) -> bytes:
        r = client.get(f"{PREFIX}/tile/{path}")
        assert r.status_code == 200, (path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/octet-stream"
        return r.content

    return fetch


def signed(client) -> tuple[str, int, bytes, str]:
    r = client.get(f"{PREFIX}/checkpoint")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    return (
        *open_checkpoint(r.text, [parse_verifier_key(vkey_of(client.get(f"{PREFIX}/key").json()["public_key"]))]),
        r.text,
    )


def test_note_tiles_and_proofs_from_the_api_check_with_the_spec_client(live):
    with live.client(AUDIT_TOKEN) as c:
        key = c.get(f"{PREFIX}/key").json()["public_key"]
        origin, size, root, note = signed(c)
        assert origin == f"wingman/{NODE}" and size >= 600
        assert c.get(f"{PREFIX}/checkpoint").headers["wingman-verifier-key"] == vkey_of(key)
        client = TileClient(fetcher(c), size)
        assert client.mth(0, size) == root
        assert "1/000.p/" + str(size // 256) in client.fetched  # the partial tile of level 1

        # an event from the API is in the signed tree, and its entry bundle holds its hash
        ev = c.get("/api/events", params={"after": 299, "limit": 1}).json()["events"][0]
        assert ev["position"] == 300
        assert root_from_inclusion(299, size, leaf(event_hash(ev)), client.inclusion(299, size)) == root
        bundle = c.get(f"{PREFIX}/tile/entries/001").content
        assert bundle[(299 - 256) * 34 : (299 - 256) * 34 + 34] == b"\x00\x20" + event_hash(ev)
        assert [leaf(bundle[i + 2 : i + 34]) for i in range(0, len(bundle), 34)] == client.tile(0, 1)

        # tiles past the signed size are not served
        assert c.get(f"{PREFIX}/tile/0/{size // 256 + 1:03d}").status_code == 404
        assert c.get(f"{PREFIX}/tile/0/{size // 256:03d}.p/{size % 256 + 1}").status_code == 404
        assert c.get(f"{PREFIX}/tile/0/1").status_code == 404

    with live.client() as owner:  # the log grows: the next checkpoint must be consistent with this one
        op = owner.post(f"/api/servers/{live.servers[0]['settings']['uuid']}/power", json={"action": "start"}).json()
        assert live.wait_operation(op["id"])["status"] == "succeeded"
    with live.client(AUDIT_TOKEN) as c:

        def grown() -> tuple[int, bytes] | None:
            _, n, r, _ = signed(c)
            return (n, r) if n > size else None

        new_size, new_root = eventually(grown, 30, "a checkpoint of the grown log")
        newer = TileClient(fetcher(c), new_size)
        assert newer.mth(0, new_size) == new_root
        proof = newer.consistency(size, new_size)
        assert consistent(size, new_size, root, new_root, proof)
        assert not consistent(size, new_size, hashlib.sha256(root).digest(), new_root, proof)

        # a changed tile or note is refused
        def changed(path: str) -> bytes:
            body = fetcher(c)(path)
            return body if path != "0/001" else body[:100] + bytes([body[100] ^ 1]) + body[101:]

        with pytest.raises(TileRefused):
            TileClient(changed, new_size).inclusion(299, new_size)
        vkey = parse_verifier_key(vkey_of(key))
        with pytest.raises(NoteRefused):
            open_checkpoint(note.replace(f"\n{size}\n", f"\n{size + 1}\n"), [vkey])


def test_before_the_first_checkpoint_the_note_is_the_empty_tree(daemon_process):
    d = daemon_process(servers=[definition()], audit={"node_id": NODE, "checkpoint_every_seconds": 3600})
    with d.client(AUDIT_TOKEN) as c:
        assert c.get(f"{PREFIX}/key").json()["latest_checkpoint"] is None
        origin, size, root, _ = signed(c)
        assert (origin, size, root) == (f"wingman/{NODE}", 0, hashlib.sha256(b"").digest())
        assert c.get(f"{PREFIX}/tile/0/000.p/1").status_code == 404  # events exist, none signed
