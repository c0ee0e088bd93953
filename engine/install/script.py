"""The egg's install script as the Panel serves it (`GET /api/remote/servers/{uuid}/install`:
`{container_image, entrypoint, script}`, Wings' remote.InstallationScript), and its folder on the
host, mounted into the installer.

The folder is `system.tmp_directory/<uuid>` (Wings' place), 0700, with `install.sh` in it (CRLF
line ends made LF, as Wings does: an egg edited on Windows still runs). `tmp_directory` sits in
/tmp by default, where any local user may have made the name first: it is used only when it is a
real folder of the daemon's own user that nobody else may write, so no other user (a local game
server among them) can swap a script that runs as root in the installer with another server's
folder mounted beside it. Nothing in it is followed.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

SCRIPT_NAME = "install.sh"
MAX_SCRIPT_BYTES = 4 * 1024 * 1024  # an egg's script is a few KB; the Panel's column holds far less
MAX_NAME = 1024  # of an image name or an entrypoint


class InstallSourceError(Exception):
    """What the install needs could not be had from the Panel (its script, the server's current
    definition); the message says why, for the install's outcome."""


@dataclass(frozen=True)
class InstallScript:
    image: str
    entrypoint: str
    script: str


def parse_script(doc: object) -> InstallScript:
    """The Panel's install document, checked; InstallSourceError saying what is wrong with it."""
    if not isinstance(doc, dict):
        raise InstallSourceError(f"the Panel's install document is {type(doc).__name__}, not an object")
    values = {}
    for key in ("container_image", "entrypoint"):
        value = doc.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InstallSourceError(
                f"the Panel's install document has no `{key}` (the egg's install "
                f"{'image' if key == 'container_image' else 'entrypoint'})"
            )
        if "\0" in value or len(value) > MAX_NAME:
            raise InstallSourceError(f"the Panel's install document has a `{key}` that is not a name")
        values[key] = value.strip()
    script = doc.get("script")
    if script is None:
        script = ""  # an egg without a script: the entrypoint runs an empty file, which succeeds
    if not isinstance(script, str):
        raise InstallSourceError("the Panel's install document has a `script` that is not text")
    if len(script.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_BYTES:
        raise InstallSourceError(f"the egg's install script is over {MAX_SCRIPT_BYTES // 1048576} MiB")
    return InstallScript(image=values["container_image"], entrypoint=values["entrypoint"], script=script)


def _private_root(root: Path) -> int:
    """A descriptor on `root`, made 0700 when missing (its parents too, as Wings makes them);
    OSError when it is not a folder of the daemon's own user that only that user may write."""
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise PermissionError(
            f"{root} belongs to uid {st.st_uid} or may be written by others (mode "
            f"{stat.S_IMODE(st.st_mode):o}): an install script is not put there"
        )
    return fd


def write_script_folder(root: Path, uuid: str, script: str) -> Path:
    """`root/<uuid>/install.sh`, fresh (what a former install left there is removed); the folder's path.
    Blocking (run it in a thread); OSError saying why when it cannot be written safely."""
    root_fd = _private_root(root)
    try:
        _remove_entry(root_fd, uuid)
        os.mkdir(uuid, 0o700, dir_fd=root_fd)
        folder_fd = os.open(uuid, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
        try:
            fd = os.open(SCRIPT_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder_fd)
            with os.fdopen(fd, "wb") as f:
                f.write(script.replace("\r\n", "\n").encode("utf-8", "replace"))
        finally:
            os.close(folder_fd)
    finally:
        os.close(root_fd)
    return root / uuid


def remove_script_folder(root: Path, uuid: str) -> None:
    """Remove `root/<uuid>` (the installer is gone): nothing followed, nothing there is no error."""
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        _remove_entry(root_fd, uuid)
    finally:
        os.close(root_fd)


def _remove_entry(dir_fd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # descriptor-based: a link inside is removed, not followed
    else:
        os.unlink(name, dir_fd=dir_fd)
