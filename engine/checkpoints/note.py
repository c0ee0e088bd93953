"""A signed checkpoint rendered in the C2SP formats: a `tlog-checkpoint` note text signed as a
`signed-note` (c2sp.org/tlog-checkpoint, c2sp.org/signed-note), so off-the-shelf transparency-log
clients can read it without wingman's code.

The text is three lines: the origin `wingman/<node id>`, the tree size, and the base64 RFC 6962
root, the same size and root as the JSON checkpoint (engine.checkpoints.format), which stays for
what a note has no line for (seq, time, key announcements). The key name is the origin, and the
key ID is the spec's recommended one, SHA-256(name || 0x0A || 0x01 || public key)[:4], so the
verifier key `<name>+<hex key ID>+<base64(0x01 || public key)>` is all a client needs.

Pure computation: the caller hands in the checkpoint and the private key it is signed with.
"""

from __future__ import annotations

import base64
import hashlib
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wingman.engine.checkpoints.format import SignedCheckpoint

ED25519 = b"\x01"  # the signed-note signature type of Ed25519
EM_DASH = "\u2014"
_NAME = re.compile(r"[^\s+]+\Z")  # non-empty, no Unicode spaces, no '+'


def origin(node: str) -> str:
    """The checkpoint origin (and key name) of a node's log."""
    name = f"wingman/{node}"
    if not _NAME.match(name):  # config refuses such node ids; a note must never carry one
        raise ValueError(f"a node id with a space or '+' cannot name a note key: {node!r}")
    return name


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, public: Ed25519PublicKey) -> bytes:
    """The 4-byte key ID signed-note recommends for an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + raw_public(public)).digest()[:4]


def verifier_key(name: str, public: Ed25519PublicKey) -> str:
    """`<name>+<hex key ID>+<base64(0x01 || public key)>`, the signed-note verifier key."""
    return f"{name}+{key_id(name, public).hex()}+{base64.b64encode(ED25519 + raw_public(public)).decode()}"


def checkpoint_text(name: str, size: int, root: bytes) -> str:
    """The tlog-checkpoint note text: origin, size, base64 root, each ending in a newline."""
    if size < 0 or len(root) != 32:
        raise ValueError("a checkpoint has a size of 0 or more and a 32-byte root")
    return f"{name}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_note(text: str, name: str, private: Ed25519PrivateKey) -> str:
    """`text` signed with one Ed25519 signature line: the text, a blank line, the signature."""
    if not text.endswith("\n") or any(c < " " and c != "\n" for c in text):
        raise ValueError("a note text ends in a newline and holds no other control character")
    signature = private.sign(text.encode())
    line = base64.b64encode(key_id(name, private.public_key()) + signature).decode()
    return f"{text}\n{EM_DASH} {name} {line}\n"


def checkpoint_note(signed: SignedCheckpoint, private: Ed25519PrivateKey) -> str:
    """The signed note of a signed checkpoint's size and root, signed with `private`: the key the
    checkpointer holds now, which after a rotation is the announced next key, not the one that
    signed the JSON checkpoint announcing it (that one is gone)."""
    name = origin(signed.node)
    return sign_note(checkpoint_text(name, signed.size, bytes.fromhex(signed.root)), name, private)
