"""A signed checkpoint: what the daemon vouches for about the whole log at one moment.

The body is a JSON object:

    {"format": "wingman-checkpoint/1", "seq": 7, "size": 12000, "root": "<hex SHA-256>",
     "time": "2026-12-01T10:00:00.000000Z", "node": "node-1", "key": "<base64 Ed25519 public key>"}

plus `"next_key": "<base64>"` on a checkpoint that announces a key rotation (signed with the old
key; the checkpoints after it are signed with the new one). `size` leaves of the log's RFC 9162
tree have root `root`; `seq` numbers checkpoints from 1 without gaps, so a removed one shows.

The signature is Ed25519 over the body's canonical bytes: RFC 8785 (JCS) JSON, which for these
values (whole numbers and ASCII strings that need no escaping, checked here) is exactly
`json.dumps(body, sort_keys=True, separators=(",", ":")).encode()`. A signed checkpoint travels as
`{"checkpoint": body, "signature": "<base64>"}`: one line of the checkpoint file, one row of the
checkpoints table, one piece of a proof.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = "wingman-checkpoint/1"
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_SAFE = re.compile(r"[\x20-\x7e]*\Z")  # printable ASCII: canonical JSON needs no escape but \" and \\


class BadCheckpoint(ValueError):
    """A checkpoint that is not well formed; the message says what is wrong."""


class BadKey(ValueError):
    """Text that is not an Ed25519 public key in a form we read."""


class CheckpointBody(TypedDict):
    """The signed body (see the module doc); `parse_body` checks a body read from elsewhere."""

    format: str
    seq: int
    size: int
    root: str  # hex
    time: str
    node: str
    key: str  # base64
    next_key: NotRequired[str]  # base64, on a checkpoint that announces a rotation


def canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def encode_key(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def decode_key(text: str) -> Ed25519PublicKey:
    """A public key as base64 or hex of its 32 raw bytes, or as a PEM block (or a file holding any
    of these)."""
    text = text.strip()
    if text and not text.startswith("-----") and len(text) < 200 and Path(text).expanduser().is_file():
        text = Path(text).expanduser().read_text().strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise BadKey(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BadKey("the PEM key is not an Ed25519 key")
        return key
    raw = None
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raw = bytes.fromhex(text)
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise BadKey("an Ed25519 public key is 32 bytes, given as base64 (44 characters), hex (64) or PEM")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_of(text: str) -> Ed25519PublicKey:
    """The key a checkpoint names: base64 of its 32 raw bytes, nothing else."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raw = b""
    if len(raw) != 32 or len(text) != 44:
        raise BadKey("not the base64 of a 32-byte Ed25519 key")
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class SignedCheckpoint:
    body: CheckpointBody
    signature: str

    @property
    def seq(self) -> int:
        return self.body["seq"]

    @property
    def size(self) -> int:
        return self.body["size"]

    @property
    def root(self) -> str:
        return self.body["root"]

    @property
    def time(self) -> str:
        return self.body["time"]

    @property
    def node(self) -> str:
        return self.body["node"]

    @property
    def key(self) -> str:
        return self.body["key"]

    @property
    def next_key(self) -> str | None:
        return self.body.get("next_key")

    def as_dict(self) -> dict[str, Any]:
        return {"checkpoint": dict(self.body), "signature": self.signature}

    def line(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")) + "\n"

    def signature_ok(self) -> bool:
        """Whether the signature is the body's, by the key the body names (the caller decides
        whether that key is one to trust)."""
        try:
            key = key_of(self.key)
            key.verify(base64.b64decode(self.signature, validate=True), canonical(self.body))
        except (BadKey, InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def make_body(
    *,
    seq: int,
    size: int,
    root: bytes,
    time: str,
    node: str,
    key: Ed25519PublicKey,
    next_key: Ed25519PublicKey | None = None,
) -> CheckpointBody:
    body: CheckpointBody = {
        "format": FORMAT,
        "seq": seq,
        "size": size,
        "root": root.hex(),
        "time": time,
        "node": node,
        "key": encode_key(key),
    }
    if next_key is not None:
        body["next_key"] = encode_key(next_key)
    return body


def sign(private: Ed25519PrivateKey, body: CheckpointBody) -> SignedCheckpoint:
    parse_body(body)  # never sign what a verifier would refuse to read
    if body["key"] != encode_key(private.public_key()):
        raise BadCheckpoint("the body names another key than the one signing it")
    return SignedCheckpoint(body.copy(), base64.b64encode(private.sign(canonical(body))).decode())


def parse_body(body: object) -> CheckpointBody:
    """The body, checked field by field (a verifier reads bodies an attacker may have written)."""
    if not _checked(body):  # never False: it raises, naming what is wrong
        raise BadCheckpoint("the checkpoint is not a signed body")
    return body


def _checked(body: object) -> TypeGuard[CheckpointBody]:
    """True for a well-formed body; BadCheckpoint saying why for anything else."""
    if not isinstance(body, dict):
        raise BadCheckpoint("the checkpoint is not a JSON object")
    allowed = {"format", "seq", "size", "root", "time", "node", "key", "next_key"}
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadCheckpoint(f"unknown field(s) {', '.join(extra)}")
    if body.get("format") != FORMAT:
        raise BadCheckpoint(f"format is {body.get('format')!r}, not {FORMAT!r}")
    for name in ("seq", "size"):
        v = body.get(name)
        if type(v) is not int or v < (1 if name == "seq" else 0):
            raise BadCheckpoint(f"{name} is not a whole number of {1 if name == 'seq' else 0} or more: {v!r}")
    if not isinstance(body.get("root"), str) or not _HEX64.match(body["root"]):
        raise BadCheckpoint("root is not 64 lowercase hexadecimal digits")
    for name in ("time", "node", "key") + (("next_key",) if "next_key" in body else ()):
        v = body.get(name)
        if not isinstance(v, str) or not v or not _SAFE.match(v):
            raise BadCheckpoint(f"{name} is not a non-empty printable ASCII string")
    for name in ("key", "next_key"):
        if name in body:
            try:
                key_of(body[name])
            except BadKey:
                raise BadCheckpoint(f"{name} is not the base64 of a 32-byte Ed25519 key") from None
    return True


def parse_signed(doc: Any) -> SignedCheckpoint:
    if not isinstance(doc, dict) or set(doc) != {"checkpoint", "signature"}:
        raise BadCheckpoint('a signed checkpoint is {"checkpoint": {...}, "signature": "..."}')
    if not isinstance(doc["signature"], str):
        raise BadCheckpoint("the signature is not a string")
    return SignedCheckpoint(parse_body(doc["checkpoint"]), doc["signature"])
