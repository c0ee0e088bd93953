"""A C2SP client written here from the specs alone (c2sp.org/signed-note, tlog-checkpoint,
tlog-tiles, and RFC 9162 section 2.1 for the proofs), with hashlib and cryptography and none of
wingman's code: the test_tlog_* files check wingman's notes, tiles and proofs with it, and the
witness of tests/support/tlog_witness.py checks consistency with it. tests/audit/test_tlog_verifier.py
holds it to the RFC's algorithms on a tree built here (naive_mth, spec_tiles), so a verifier that
accepted anything would fail there."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EM_DASH = "\u2014"


class NoteRefused(ValueError):
    pass


class TileRefused(ValueError):
    pass


@dataclass(frozen=True)
class VKey:
    name: str
    key_id: bytes
    public: Ed25519PublicKey


def key_id(name: str, typed_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || key)[:4], the key ID of signed-note and tlog-cosignature."""
    return hashlib.sha256(name.encode() + b"\n" + typed_key).digest()[:4]


def vkey(name: str, typed_key: bytes) -> str:
    """`<name>+<hex key ID>+<base64(type || key)>`."""
    return f"{name}+{key_id(name, typed_key).hex()}+{base64.b64encode(typed_key).decode()}"


def log_vkey(node: str, public_key_b64: str) -> str:
    """The signed-note verifier key (type 0x01) of a wingman node's log key (its base64 public key,
    as GET /api/audit/key gives it)."""
    return vkey(f"wingman/{node}", b"\x01" + base64.b64decode(public_key_b64))


def event_hash(ev: dict) -> bytes:
    """The event hash as the README defines it, from the event the API returns: a leaf's entry."""
    covered = {k: ev[k] for k in ("stream_id", "version", "event_id", "type", "data", "metadata", "recorded_at")}
    text = json.dumps(covered, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((ev["prev_hash"] + text).encode()).digest()


def parse_verifier_key(vkey: str) -> VKey:
    """`<name>+<hex key ID>+<base64(type || key)>` (signed-note, "Verifier keys")."""
    name, hex_id, b64 = vkey.split("+", 2)  # base64 may hold a "+" too; a name may not
    raw = base64.b64decode(b64, validate=True)
    assert raw[0] == 1 and len(raw) == 33, "only Ed25519 (type 0x01) keys are known here"
    kid = key_id(name, raw)
    assert kid.hex() == hex_id, "the key ID does not match the key"
    return VKey(name, kid, Ed25519PublicKey.from_public_bytes(raw[1:]))


def open_note(note: str, known: list[VKey]) -> str:
    """The note's text, once a known key's signature verifies (signed-note, "Signatures")."""
    if any(c < " " and c != "\n" for c in note) or not note.endswith("\n"):
        raise NoteRefused("control characters, or no final newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteRefused("no blank line before the signatures")
    text, lines = note[: cut + 1], note[cut + 2 :].splitlines()
    verified = 0
    for line in lines:
        dash, name, b64 = (line.split(" ") + ["", ""])[:3] if line.count(" ") == 2 else ("", "", "")
        if dash != EM_DASH or not name:
            raise NoteRefused(f"not a signature line: {line!r}")
        try:
            sig = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteRefused("a signature is not base64") from None
        for k in known:
            if k.name == name and k.key_id == sig[:4]:  # a known key: it must verify
                try:
                    k.public.verify(sig[4:], text.encode())
                except InvalidSignature:
                    raise NoteRefused(f"the signature of {name} does not verify") from None
                verified += 1
    if not verified:
        raise NoteRefused("no signature from a known key")
    return text


def open_checkpoint(note: str, known: list[VKey]) -> tuple[str, int, bytes]:
    """(origin, tree size, root hash) of a verified tlog-checkpoint note."""
    lines = open_note(note, known).split("\n")[:-1]
    if len(lines) < 3 or not all(lines):
        raise NoteRefused("a checkpoint has at least three non-empty lines")
    size = lines[1]
    if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise NoteRefused("the tree size is not a decimal without leading zeroes")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise NoteRefused("the root is not a SHA-256 hash")
    return lines[0], int(size), root


# -- RFC 6962 / 9162 hashing and proofs ---------------------------------------------------------


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def index_path(n: int) -> str:
    """A tile index as 3-digit path elements, all but the last led by `x` (tlog-tiles)."""
    digits = str(n).zfill(3)
    digits = digits.zfill(-(-len(digits) // 3) * 3)
    parts = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{p}" for p in parts[:-1]] + [parts[-1]])


class TileClient:
    """The tree of `size` leaves read from tiles (`fetch(path)` returns the bytes at tile/<path>):
    any Merkle Tree Hash, inclusion path or consistency proof, computed here."""

    def __init__(self, fetch: Callable[[str], bytes], size: int):
        self.fetch, self.size = fetch, size
        self.tiles: dict[tuple[int, int], list[bytes]] = {}
        self.fetched: list[str] = []

    def tile(self, level: int, index: int) -> list[bytes]:
        if (level, index) not in self.tiles:
            if (index + 1) * 256 ** (level + 1) <= self.size:
                width, path = 256, f"{level}/{index_path(index)}"
            else:
                width = (self.size // 256**level) % 256
                path = f"{level}/{index_path(index)}.p/{width}"
            body = self.fetch(path)
            self.fetched.append(path)
            if len(body) != 32 * width:
                raise TileRefused(f"tile {path} is {len(body)} bytes, not {32 * width}")
            hashes = [body[i : i + 32] for i in range(0, len(body), 32)]
            if width == 256 and self.perfect_of(hashes) != self.tile(level + 1, index // 256)[index % 256]:
                # a full tile is the subtree whose root the tile above holds: checked down from the
                # top, whose tiles the root (compared with the signed one) covers
                raise TileRefused(f"tile {path} does not hash to its entry in the tile above")
            self.tiles[(level, index)] = hashes
        return self.tiles[(level, index)]

    @staticmethod
    def perfect_of(hashes: list[bytes]) -> bytes:
        while len(hashes) > 1:
            hashes = [node(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def perfect(self, height: int, k: int) -> bytes:
        """The hash of the perfect subtree of 2**height leaves starting at leaf k * 2**height."""
        level, below = divmod(height, 8)
        first = k << below  # its first hash at tree height 8 * level, which a tile of `level` holds
        hashes = self.tile(level, first // 256)[first % 256 : first % 256 + (1 << below)]
        if len(hashes) != 1 << below:
            raise TileRefused("a tile is too narrow for a subtree the tree size implies")
        return self.perfect_of(hashes)

    def mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n & (n - 1) == 0 and lo % n == 0:
            return self.perfect(n.bit_length() - 1, lo // n)
        k = split(n)
        return node(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def inclusion(self, m: int, n: int) -> list[bytes]:
        def path(m: int, lo: int, hi: int) -> list[bytes]:
            if hi - lo == 1:
                return []
            k = split(hi - lo)
            if m < k:
                return path(m, lo, lo + k) + [self.mth(lo + k, hi)]
            return path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

        return path(m, 0, n)

    def consistency(self, m: int, n: int) -> list[bytes]:
        def sub(m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
            if m == hi - lo:
                return [] if whole else [self.mth(lo, hi)]
            k = split(hi - lo)
            if m <= k:
                return sub(m, lo, lo + k, whole) + [self.mth(lo + k, hi)]
            return sub(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]

        return sub(m, 0, n, True)


def root_from_inclusion(index: int, size: int, leaf_hash: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2; None when the path has the wrong length."""
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return None
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            r = node(r, p)
        fn, sn = fn // 2, sn // 2
    return r if sn == 0 else None


def consistent(m: int, n: int, r1: bytes, r2: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 2.1.4.2: whether `proof` shows the tree of n leaves (root r2) extends the one of m (r1)."""
    if m == n:
        return not proof and r1 == r2
    if not 0 < m < n:  # nothing to prove from the empty tree; nothing shrinks
        return False
    path = [r1, *proof] if m & (m - 1) == 0 else list(proof)
    if not path:
        return False
    fn, sn = m - 1, n - 1
    while fn % 2 == 1:
        fn, sn = fn // 2, sn // 2
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            sr = node(sr, c)
        fn, sn = fn // 2, sn // 2
    return sn == 0 and fr == r1 and sr == r2


# -- the tree by the specs' formulas, to hold the client (and wingman's tiles) to -----------------


def naive_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


def spec_tiles(leaves: list[bytes]) -> dict[str, bytes]:
    """Every tile of the tree, by the spec's MTH(D[(n*256+i)*256**l : (n*256+i+1)*256**l])."""
    out, size, level = {}, len(leaves), 0
    while size // 256**level:
        count = size // 256**level
        for n in range(-(-count // 256)):
            width = min(256, count - n * 256)
            hashes = [
                naive_mth(leaves[(n * 256 + i) * 256**level : (n * 256 + i + 1) * 256**level]) for i in range(width)
            ]
            out[f"{level}/{index_path(n)}" + ("" if width == 256 else f".p/{width}")] = b"".join(hashes)
        level += 1
    return out
