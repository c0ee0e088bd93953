"""Witness cosignatures on the node's checkpoint notes: Ed25519 cosignature/v1
(c2sp.org/tlog-cosignature), read from a witness's add-checkpoint answer (c2sp.org/tlog-witness)
and checked again by verification.

A cosignature line is `— <witness name> base64(key ID || timestamp || signature)`: a 4-byte key ID
(SHA-256(name || 0x0A || 0x04 || key)[:4]), a big-endian u64 POSIX time, and a 64-byte Ed25519
signature over `cosignature/v1\\ntime <t>\\n` followed by the checkpoint's note text.

Pure computation. A witness's answer is untrusted input: lines are read defensively, lines of keys
not configured are ignored (as the spec asks), and a line of a configured key that does not verify
is named, never kept.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from wingman.engine.config_witnesses import BadVerifierKey, parse_witness_vkey

__all__ = ["BadVerifierKey", "Cosignature", "WitnessKey", "cosigned_message", "read_cosignatures"]

EM_DASH = "\u2014"
MAX_LINES = 64  # more signature lines than any witness has keys: the rest is not read
_SIGNATURE_BYTES = 4 + 8 + 64
_MAX_TIME = 2**63 - 1


@dataclass(frozen=True)
class WitnessKey:
    name: str
    key_id: bytes
    public: Ed25519PublicKey
    vkey: str

    @classmethod
    def parse(cls, vkey: str) -> WitnessKey:
        """A witness's verifier key (raises BadVerifierKey, a ValueError, naming what is wrong)."""
        name, key_id, raw = parse_witness_vkey(vkey)
        return cls(name, key_id, Ed25519PublicKey.from_public_bytes(raw), vkey.strip())


@dataclass(frozen=True)
class Cosignature:
    witness: str  # the witness's key name
    timestamp: int
    line: str  # the signature line as the witness sent it, without its newline


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature/v1 signs: the header, the time line, then the note text."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def _signature_line(line: str) -> tuple[str, bytes] | None:
    """(key name, decoded signature) of `— <name> <base64>`, or None when it is not one."""
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != EM_DASH or not parts[1]:
        return None
    try:
        return parts[1], base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError):
        return None


def check_line(line: str, key: WitnessKey, text: str) -> Cosignature | str | None:
    """The cosignature a line holds for `text`, if it is `key`'s; a reason when it is `key`'s and
    wrong; None when it is another key's."""
    parsed = _signature_line(line)
    if parsed is None or parsed[0] != key.name or parsed[1][:4] != key.key_id:
        return None
    sig = parsed[1]
    if len(sig) != _SIGNATURE_BYTES:
        return f"the cosignature of {key.name} is {len(sig)} bytes, not {_SIGNATURE_BYTES}"
    (timestamp,) = struct.unpack(">Q", sig[4:12])
    if not 0 < timestamp <= _MAX_TIME:
        return f"the cosignature of {key.name} has no time (0) or one past 2^63 - 1"
    try:
        key.public.verify(sig[12:], cosigned_message(text, timestamp))
    except InvalidSignature:
        return f"the cosignature of {key.name} does not verify against its configured key"
    return Cosignature(key.name, timestamp, line)


def read_cosignatures(body: str, key: WitnessKey, text: str) -> tuple[list[Cosignature], list[str]]:
    """The valid cosignatures of `key` on `text` in a witness's answer, and what was wrong with the
    lines of `key` that are not (lines of other keys are skipped)."""
    good: list[Cosignature] = []
    wrong: list[str] = []
    for line in body.split("\n")[:MAX_LINES]:
        if not line:
            continue
        found = check_line(line, key, text)
        if isinstance(found, Cosignature):
            good.append(found)
        elif found is not None:
            wrong.append(found)
    return good, wrong
