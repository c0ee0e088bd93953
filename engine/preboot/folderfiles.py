"""Reading and writing files inside a server's folder without ever leaving it: paths are resolved
and checked against the folder, then opened step by step with O_NOFOLLOW (so a symlink swapped in
after the check fails), FIFOs cannot hang a read, and writes are atomic (temp file + rename)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import stat

MAX_FILE_SIZE = 64 * 1024 * 1024  # Wings parser.go maxConfigFileSize: these files are untrusted input


def create_fresh(folder: pathlib.Path, name: str, mode: int = 0o600) -> int:
    """A new, empty file `name` right in the server's folder, open for writing (its descriptor).
    The folder is the server's, so the name may already be a link it planted (to /etc/shadow,
    say): whatever is there is unlinked first (unlinking a link leaves its target alone) and the
    file is created new without following anything. A folder planted there stays: OSError."""
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


class FolderFileError(Exception):
    """A path or file that may not be touched; the message says why."""


def locate(folder: pathlib.Path, name: object) -> tuple[str, list[str]]:
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise FolderFileError("the entry needs a 'file' name")
    if os.path.isabs(name):  # Wings reads "/x" relative to the folder; we refuse, to be plain
        raise FolderFileError("absolute paths are refused; give a path inside the server folder")
    root = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(root, name))  # follows the symlinks that exist now
    if target == root or os.path.commonpath([root, target]) != root:
        raise FolderFileError("the path leads outside the server folder; refused")
    return root, os.path.relpath(target, root).split(os.sep)


def _walk(root: str, dirs: list[str], create: bool) -> int:
    # O_NOFOLLOW at every step: a symlink swapped in after _locate's check fails with ELOOP.
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for d in dirs:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(d, 0o755, dir_fd=fd)  # ufs Touch creates missing parents too
            fd, parent = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd), fd
            os.close(parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_text(root: str, parts: list[str]) -> tuple[str, os.stat_result] | None:
    try:
        dfd = _walk(root, parts[:-1], create=False)
    except FileNotFoundError:
        return None
    try:  # O_NONBLOCK so that a FIFO planted here cannot hang the boot
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    except FileNotFoundError:
        return None
    finally:
        os.close(dfd)
    try:
        if not stat.S_ISREG((st := os.fstat(fd)).st_mode):
            raise FolderFileError("is not a regular file")
        if st.st_size > MAX_FILE_SIZE:
            raise FolderFileError(f"is {st.st_size} bytes, over the {MAX_FILE_SIZE}-byte limit; left as it is")
        with open(fd, "rb", closefd=False) as f:
            return f.read(MAX_FILE_SIZE).decode("utf-8", "surrogateescape"), st
    finally:
        os.close(fd)


def write_text(root: str, parts: list[str], text: str, st: os.stat_result | None) -> None:
    """Atomically: a temp file in the same directory, then a rename over the original."""
    dfd = _walk(root, parts[:-1], create=True)
    tmp = f".{parts[-1]}.{secrets.token_hex(4)}.wingman-tmp"
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dfd), "wb") as f:
            f.write(text.encode("utf-8", "surrogateescape"))
            if st is not None:  # keep the original's mode and, where allowed, its owner
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
                with contextlib.suppress(PermissionError):
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, parts[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    finally:
        os.close(dfd)
