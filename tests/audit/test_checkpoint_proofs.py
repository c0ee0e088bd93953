"""`wingman audit prove`: inclusion and consistency proofs checked by an independent verifier written
here from RFC 9162 and the README with hashlib and cryptography alone (none of the code under test),
on a real database file a real daemon signed."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.support.checkpoints import build_signed_log, checkpoint_rows, forge_actor, runner, sql
from tests.support.tlog_client import consistent, event_hash, leaf, root_from_inclusion
from wingman.api.cli.main import app

# -- the independent verifier: what a third party writes from the README (its RFC 9162 pieces are
# the spec client's, tests/support/tlog_client.py) ------------------------------------------------


def signed_body(signed: dict, public_key: str) -> dict:
    body = signed["checkpoint"]
    message = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key)).verify(
        base64.b64decode(signed["signature"]), message
    )
    assert body["key"] == public_key
    return body


def check_inclusion(doc: dict, public_key: str) -> bool:
    body = signed_body(doc["checkpoint"], public_key)
    ev = doc["event"]
    if event_hash(ev).hex() != doc["event_hash"] or ev["position"] != doc["leaf_index"] + 1:
        return False
    path = [bytes.fromhex(p) for p in doc["path"]]
    root = root_from_inclusion(doc["leaf_index"], body["size"], leaf(bytes.fromhex(doc["event_hash"])), path)
    return doc["tree_size"] == body["size"] and root is not None and root.hex() == body["root"]


def check_consistency(doc: dict, public_key: str) -> bool:
    """RFC 9162 section 2.1.4.2."""
    old, new = signed_body(doc["old"], public_key), signed_body(doc["new"], public_key)
    m, n = old["size"], new["size"]
    r1, r2 = bytes.fromhex(old["root"]), bytes.fromhex(new["root"])
    return consistent(m, n, r1, r2, [bytes.fromhex(p) for p in doc["path"]])


# -- the tests ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return asyncio.run(build_signed_log(tmp_path_factory.mktemp("proofs"), total=150, servers=2, every_events=20))


@pytest.fixture
def log(pristine, tmp_path):
    return pristine.copy(tmp_path)


def prove(log, *args: str):
    r = runner.invoke(app, ["audit", "prove", *args, "--database", str(log.db), "--key", log.key])
    return r.exit_code, (json.loads(r.stdout) if r.exit_code == 0 else r.output)


def test_inclusion_proofs_check_independently(pristine):
    sizes = [c["size"] for c in checkpoint_rows(pristine.db)]
    for position in (1, 2, 77, 149, 150):
        code, doc = prove(pristine, str(position))
        assert code == 0, doc
        assert doc["tree_size"] == max(sizes) and doc["event"]["position"] == position
        assert check_inclusion(doc, pristine.key)
    # Against an older checkpoint, named by its seq.
    older = checkpoint_rows(pristine.db)[2]
    code, doc = prove(pristine, "5", "--checkpoint", str(older["seq"]))
    assert code == 0 and doc["tree_size"] == older["size"] and check_inclusion(doc, pristine.key)


def test_a_changed_proof_does_not_check(pristine):
    _, doc = prove(pristine, "77")
    forged = json.loads(json.dumps(doc))
    forged["event"]["metadata"]["actor"] = "panel-admin-alice"
    assert not check_inclusion(forged, pristine.key)
    moved = json.loads(json.dumps(doc))
    moved["leaf_index"] += 1
    moved["event"]["position"] += 1
    with pytest.raises(AssertionError):
        assert check_inclusion(moved, pristine.key)
    resigned = json.loads(json.dumps(doc))
    resigned["checkpoint"]["checkpoint"]["size"] += 1
    with pytest.raises(InvalidSignature):
        check_inclusion(resigned, pristine.key)


def test_consistency_proofs_check_independently(pristine):
    sizes = sorted({c["size"] for c in checkpoint_rows(pristine.db)})
    for old, new in ((sizes[0], sizes[-1]), (sizes[1], sizes[2]), (sizes[3], sizes[3]), (sizes[2], sizes[-1])):
        code, doc = prove(pristine, "--consistency", str(old), str(new))
        assert code == 0, doc
        assert (doc["old_size"], doc["new_size"]) == (old, new)
        assert check_consistency(doc, pristine.key)
    _, doc = prove(pristine, "--consistency", str(sizes[1]), str(sizes[-1]))
    swapped = dict(doc, old=doc["new"], new=doc["old"])
    assert not check_consistency(swapped, pristine.key)
    doc["path"][0] = "00" * 32
    assert not check_consistency(doc, pristine.key)


def test_bad_requests_are_refused(log):
    sizes = sorted({c["size"] for c in checkpoint_rows(log.db)})
    assert prove(log, "151")[0] == 2  # no such event
    assert prove(log, "--consistency", "3", str(sizes[-1]))[0] == 2  # no checkpoint of 3 events
    assert prove(log)[0] == 2
    assert prove(log, "--consistency", str(sizes[2]), str(sizes[1]))[0] == 2
    code, out = prove(log, "5", "--checkpoint", "999")
    assert code == 2 and "seq 999" in out


def test_no_proof_over_a_log_that_no_longer_matches(log):
    forged = forge_actor(log.db, log.ids[0])
    code, out = prove(log, str(forged["position"]))
    assert code == 1 and "not the one checkpoint" in out and "wingman audit verify" in out
    # Nor over a log whose kept leaves were dropped too (the proof then rests on the log alone).
    sql(log.db, ("UPDATE checkpoints SET leaves = ?", (b"",)))
    code, out = prove(log, str(forged["position"]))
    assert code == 1 and "no longer reproduces" in out
