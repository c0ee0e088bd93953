"""A disk that fills up: a small tmpfs mounted for a test, and a filler file to the last byte.

Mounting needs root (CI runs as root): if it fails, the test fails rather than skips."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def tmpfs(mount_point: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `mount_point` (made here) for the block."""
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"cannot mount a tmpfs (this test needs root): {result.stderr}"
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the file system says ENOSPC, down to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (256 * 1024, 4096, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    assert os.statvfs(folder).f_bavail == 0
    return filler
