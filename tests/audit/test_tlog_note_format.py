"""wingman's C2SP notes and tile paths held to the specs' own examples (c2sp.org/signed-note,
tlog-checkpoint, tlog-tiles) and to the reference implementation's published known answer (Go's
golang.org/x/mod/sumdb/note: the PeterNeumann key and note). The verifier here is written from the
spec with hashlib and cryptography (tests/audit/test_tlog_verifier.py), not from wingman's code."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.tlog_client import NoteRefused, open_checkpoint, open_note, parse_verifier_key
from wingman.engine.checkpoints.note import checkpoint_text, key_id, origin, sign_note, verifier_key
from wingman.engine.checkpoints.tiles import NoTile, parse_tile_path, tile_path

# c2sp.org/signed-note, "Example"
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"  # noqa: E501 (the spec's vector)
)
# golang.org/x/mod/sumdb/note's documentation: a signing key, its verifier key, a text, its note
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]  # 0x01 || seed
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"  # noqa: E501 (the reference vector)
)
# c2sp.org/tlog-checkpoint: the example checkpoint's text
SPEC_CHECKPOINT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_the_spec_example_note_verifies_with_the_test_verifier():
    assert open_note(SPEC_NOTE, [parse_verifier_key(SPEC_VKEY)]) == "This is an example message.\n"


def test_wingman_signs_the_reference_known_answer_byte_for_byte():
    private = Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED)
    assert sign_note(GO_TEXT, "PeterNeumann", private) == GO_NOTE  # Ed25519 is deterministic
    assert verifier_key("PeterNeumann", private.public_key()) == GO_VKEY
    assert key_id("PeterNeumann", private.public_key()).hex() == "c74f20a3"
    assert open_note(GO_NOTE, [parse_verifier_key(GO_VKEY)]) == GO_TEXT


def test_a_wingman_checkpoint_has_the_spec_layout_and_verifies():
    private = Ed25519PrivateKey.generate()
    name = origin("node-1")
    root = bytes(range(32))
    note = sign_note(checkpoint_text(name, 12, root), name, private)
    assert note.startswith(f"wingman/node-1\n12\n{base64.b64encode(root).decode()}\n\n\u2014 wingman/node-1 ")
    vkey = parse_verifier_key(verifier_key(name, private.public_key()))
    assert open_checkpoint(note, [vkey]) == ("wingman/node-1", 12, root)
    assert checkpoint_text(
        "example.com/behind-the-sofa", 20852163, base64.b64decode(SPEC_CHECKPOINT.split("\n")[2])
    ) == (SPEC_CHECKPOINT)


def test_tampered_or_foreign_notes_are_refused():
    vkey = parse_verifier_key(GO_VKEY)
    with pytest.raises(NoteRefused):  # one changed character of the text
        open_note(GO_NOTE.replace("answer", "Answer"), [vkey])
    with pytest.raises(NoteRefused):  # signed by a key the verifier does not know
        open_note(SPEC_NOTE, [vkey])
    other = Ed25519PrivateKey.generate()
    forged = sign_note(GO_TEXT, "PeterNeumann", other)  # same name, another key: another key id
    with pytest.raises(NoteRefused):
        open_note(forged, [vkey])
    with pytest.raises(NoteRefused):  # same name and key id, a signature that does not verify
        sig = base64.b64decode(GO_NOTE.rsplit(" ", 1)[1])
        bad = sig[:4] + other.sign(GO_TEXT.encode())
        open_note(GO_TEXT + f"\n\u2014 PeterNeumann {base64.b64encode(bad).decode()}\n", [vkey])


def test_tile_paths_as_the_spec_spells_them():
    assert tile_path(0, 1234067) == "0/x001/x234/067"  # the spec's example index
    assert tile_path(1, 5, 17) == "1/005.p/17"
    assert tile_path(None, 0, 3) == "entries/000.p/3"
    p = parse_tile_path("0/x001/x234/067")
    assert (p.level, p.index, p.width) == (0, 1234067, None)
    p = parse_tile_path("2/000.p/1")
    assert (p.level, p.index, p.width) == (2, 0, 1)
    p = parse_tile_path("entries/x001/000.p/255")
    assert (p.level, p.index, p.width) == (None, 1000, 255)
    for bad in ("0/1", "0/0001", "01/000", "64/000", "0/001/000", "0/x001", "0/000.p/0", "0/000.p/256", "0/000.p/01"):
        with pytest.raises(NoTile):
            parse_tile_path(bad)
