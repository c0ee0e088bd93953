"""A deleted server's folder, removed without following anything its server put there.

The folder's content was written by the game server, so it may be hostile: symlinks to anywhere
(`/`, the daemon's database), folders swapped for symlinks while the removal walks. Two steps:

- `set_aside`, on the delete's own path: the folder is renamed, within the data folder, to a name
  no server has (a rename: instant, whatever the folder holds). The delete can then answer at once,
  and a server registered again under the same uuid starts in a new folder that the removal never
  touches. A rename moves a symlink itself, never what it points to.
- `remove`, in the background (a worker thread): `shutil.rmtree`, which on Linux walks by
  directory descriptors opened with O_NOFOLLOW and unlinks symlinks without following them
  (`shutil.rmtree.avoids_symlink_attacks`). It goes on past what it cannot remove and says what
  that was, so a failure is recorded rather than raised at anyone.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from types import TracebackType

TRASH_PREFIX = ".deleted-"  # not a uuid: never taken for a server's folder
MAX_PROBLEMS = 10  # problems named in the event; the rest are counted


def set_aside(folder: Path, tag: str) -> Path | None:
    """Rename `folder` to a trash name beside it; None when there is no folder. OSError when it
    cannot be moved (then nothing moved)."""
    trash = folder.with_name(f"{TRASH_PREFIX}{folder.name}-{tag}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return None
    return trash


def remove(path: Path) -> list[str]:
    """Remove `path` and everything below it, following no symlink; returns what could not be
    removed, in words (empty: all of it went)."""
    if not shutil.rmtree.avoids_symlink_attacks:  # never on Linux; refuse rather than follow links
        return [f"{path}: this platform's removal could follow symlinks; left for the operator"]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"{path}: {exc.strerror or exc}"]
    if not stat.S_ISDIR(st.st_mode):  # a symlink or a file where the folder was: only the name goes
        try:
            os.unlink(path)
        except OSError as exc:
            return [f"{path}: {exc.strerror or exc}"]
        return []
    problems: list[str] = []

    def failed(
        _function: object, where: str, exc_info: tuple[type[BaseException], BaseException, TracebackType]
    ) -> None:
        exc = exc_info[1]
        problems.append(f"{where}: {getattr(exc, 'strerror', None) or exc}")

    shutil.rmtree(path, onerror=failed)
    if len(problems) > MAX_PROBLEMS:
        problems[MAX_PROBLEMS:] = [f"and {len(problems) - MAX_PROBLEMS} more"]
    return problems
