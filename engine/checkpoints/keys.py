"""The checkpoint signing key: an Ed25519 private key in a PEM file that only the daemon's user
may read (created with mode 0600 on first run).

A rotation goes through a second file, `<key>.next`: the new key is written there first, then a
checkpoint announcing it is signed with the old key and stored, and only then does the new key
replace the old one. A crash at any step leaves either the old key in force (the announcement was
never stored: the next file is discarded at boot) or the announcement stored with the new key
waiting (the rotation is completed at boot), never checkpoints a verifier cannot follow.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class KeyFileError(Exception):
    """The key file cannot be used (unreadable, not an Ed25519 key, readable by others)."""


def _write_new(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start (O_EXCL: never over an existing key), not chmod-ed afterwards.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    _sync_dir(path.parent)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_key(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read the checkpoint key {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"the checkpoint key {path} may be read by other users (mode {stat.S_IMODE(mode):04o}); run chmod 600 on it"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    return key


def load_or_create(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The key at `path`, created when there is none; and whether it was created now."""
    if path.exists():
        return read_key(path), False
    key = Ed25519PrivateKey.generate()
    _write_new(path, key)
    return key, True


def next_path(path: Path) -> Path:
    return path.with_name(path.name + ".next")


def prepare_next(path: Path) -> Ed25519PrivateKey:
    """The key a rotation moves to, written beside the current one (an unfinished rotation's
    key is reused rather than replaced)."""
    nxt = next_path(path)
    if nxt.exists():
        return read_key(nxt)
    key = Ed25519PrivateKey.generate()
    _write_new(nxt, key)
    return key


def pending_next(path: Path) -> Ed25519PrivateKey | None:
    nxt = next_path(path)
    return read_key(nxt) if nxt.exists() else None


def commit_next(path: Path) -> None:
    """The new key takes the old one's place (the old private key is gone: that is the point)."""
    os.replace(next_path(path), path)
    _sync_dir(path.parent)


def discard_next(path: Path) -> None:
    next_path(path).unlink(missing_ok=True)
