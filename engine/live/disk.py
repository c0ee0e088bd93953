"""The size of each server's folder, measured in the background.

Walking a folder can take seconds on a big server, so it is never done on a request's path: one
task walks every server's folder in turn, in a worker thread of its own (so a slow walk never
delays the utilization samples), and requests read the last figure. Sizes are apparent sizes
(what `du --apparent-size` and Wings count), each file once however many hard links it has,
symbolic links not followed, nothing outside the folder.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

log = structlog.get_logger("wingman.live")


def folder_size(root: Path) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(root)]
    while stack:
        path = stack.pop()
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        total += st.st_size
        except OSError:  # removed meanwhile, or not readable: count what could be read
            continue
    return total


class DiskUsage:
    def __init__(self, folder: Callable[[str], Path], servers: Callable[[], Iterable[str]], interval: float):
        self._folder = folder
        self._servers = servers
        self.interval = interval
        self._sizes: dict[str, int] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="wingman-disk")
        self._task: asyncio.Task[None] | None = None

    def size(self, uuid: str) -> int:
        return self._sizes.get(uuid, 0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="disk-usage")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def measure(self, uuid: str) -> int:
        folder = self._folder(uuid)
        size = await asyncio.get_running_loop().run_in_executor(self._pool, folder_size, folder)
        self._sizes[uuid] = size
        return size

    async def _run(self) -> None:
        while True:
            servers = list(self._servers())
            for uuid in servers:
                try:
                    await self.measure(uuid)
                except Exception:
                    log.exception("could not measure a server's folder", server=uuid)
            for gone in set(self._sizes) - set(servers):
                del self._sizes[gone]
            await asyncio.sleep(self.interval)
