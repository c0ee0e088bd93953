"""The `audit.witnesses:` list: the cosigning witnesses (c2sp.org/tlog-witness) each new checkpoint
is submitted to, each given by its submission prefix and its verifier key (docs/checkpoints.md,
"Witnesses"). Not the older `audit.witness_url`, a best-effort JSON push of each checkpoint.

Standard library and pydantic only: the config is read by packages that must not import the
checkpoints (import-linter), so the verifier key is checked here, and the checkpoints build the
Ed25519 key from the bytes this returns.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

COSIGNATURE_V1 = 0x04  # the signature type of an Ed25519 cosignature/v1 key (c2sp.org/tlog-cosignature)
_NAME = re.compile(r"[^\s+]+\Z")  # signed-note: a key name is non-empty, without spaces or '+'
_HEX_ID = re.compile(r"[0-9a-f]{8}\Z")


class BadVerifierKey(ValueError):
    pass


def parse_witness_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    """(name, 4-byte key ID, 32-byte Ed25519 public key) of `<name>+<hex key ID>+<base64(0x04 || key)>`."""
    name, hex_id, b64 = (vkey.strip().split("+", 2) + ["", ""])[:3]  # base64 may hold '+'; a name may not
    if not _NAME.match(name) or not b64:
        raise BadVerifierKey("a witness key is <name>+<hex key id>+<base64 key>, the name without spaces or '+'")
    if not _HEX_ID.match(hex_id):
        raise BadVerifierKey(f"the key id of {name} is not 8 lowercase hexadecimal digits: {hex_id!r}")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadVerifierKey(f"the key of {name} is not base64") from None
    if len(raw) != 33 or raw[0] != COSIGNATURE_V1:
        raise BadVerifierKey(
            f"the key of {name} is not an Ed25519 cosignature/v1 key (type 0x04 and 32 bytes); "
            f"got type 0x{raw[:1].hex() or '??'} and {len(raw) - 1} bytes"
        )
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if key_id.hex() != hex_id:
        raise BadVerifierKey(f"the key id of {name} is {hex_id}, but its key's id is {key_id.hex()}")
    return name, key_id, raw[1:]


class CosigningWitnessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str  # the witness's submission prefix: add-checkpoint is POSTed to <url>/add-checkpoint
    key: str  # its verifier key: <name>+<hex key id>+<base64(0x04 || Ed25519 public key)>
    timeout: float = Field(default=10.0, gt=0, le=300)  # seconds for one add-checkpoint call

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")) or "?" in v or "#" in v:
            raise ValueError("a witness url is its http:// or https:// submission prefix, without query or fragment")
        return v.rstrip("/")

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        try:
            parse_witness_vkey(v)
        except BadVerifierKey as exc:
            raise ValueError(str(exc)) from None
        return v.strip()

    @property
    def name(self) -> str:
        return self.key.split("+", 1)[0]


def distinct_witnesses(witnesses: list[CosigningWitnessConfig]) -> list[CosigningWitnessConfig]:
    """The list, refused when two witnesses share a name (their cosignatures are kept by name)."""
    seen: set[str] = set()
    for w in witnesses:
        if w.name in seen:
            raise ValueError(f"two witnesses are named {w.name}: each witness's key name must be its own")
        seen.add(w.name)
    return witnesses
