"""The daemon's own files, kept from its game servers.

A game server runs as a user of its own (engine.environments.server_users), so what keeps it
from the node token, the event database and the checkpoint key is the files' modes. The daemon
sets them at every start, whoever created the files (an older version, an operator's `cp`):
- its files (the database and its WAL, the key, the checkpoints, snapshots): 0600;
- its folders: 0700, except the two a server's path crosses to reach its own folder, the root
  directory and the data directory, which are 0711 (traversable, not listable), so a server may
  use the absolute path of its folder and learns no other name;
- the run directory (consoles and stdin FIFOs, handed to servers as descriptors): 0700.

The config file is the operator's: a config that others may read while it holds the token gets a
warning, not a change.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

TRAVERSABLE = 0o711
PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def secure(root: Path, data: Path, run: Path, files: list[Path]) -> None:
    """Set the modes above. `files` are the daemon's files that may live outside `root`."""
    for folder, mode in ((root, TRAVERSABLE), (data, TRAVERSABLE), (run, PRIVATE_FOLDER)):
        _chmod(folder, mode)
    keep = {data.resolve(), run.resolve()}
    for entry in _entries(root):
        path = Path(entry.path)
        if path.resolve() in keep:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            _chmod(path, PRIVATE_FOLDER)
        elif stat.S_ISREG(st.st_mode):
            _chmod(path, PRIVATE_FILE)
    for file in files:
        _chmod(file, PRIVATE_FILE)


def readable_by_others(config_file: Path | None) -> str | None:
    """A warning when the config file (which holds the node token) is readable by others."""
    if config_file is None:
        return None
    try:
        mode = stat.S_IMODE(config_file.stat().st_mode)
    except FileNotFoundError:
        return None
    if mode & 0o077:
        return (
            f"the config file {config_file} holds the node token and is mode {mode:04o}: anyone on this "
            f"machine who can read it can drive the node; run `chmod 600 {config_file}`"
        )
    return None


def closed_above(data: Path) -> str | None:
    """A warning when a folder above the data directory is closed to other users: servers can then
    reach their folder by relative paths only (their working directory), not by its absolute path
    (`$HOME`, or an interpreter that opens its script by absolute path, as Python does)."""
    for folder in data.resolve().parents:
        try:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                return (
                    f"{folder} is closed to other users (no o+x), so game servers, which run as users of "
                    f"their own, cannot reach their folders under {data} by absolute path; put the data "
                    f"directory (system.data) where every folder above it is traversable"
                )
        except FileNotFoundError:
            return None
    return None


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except FileNotFoundError:
        return []


def _chmod(path: Path, mode: int) -> None:
    try:
        if stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode) != mode and not path.is_symlink():
            os.chmod(path, mode)
    except (FileNotFoundError, NotADirectoryError):
        pass  # not there (yet): the file's own writer creates it 0600, or says why it cannot
