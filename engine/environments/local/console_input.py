"""Commands to a local server go through its stdin FIFO, which the daemon holds open for reading
and writing, as the server does: opening never fails for want of a reader, and the server never
sees an end of input when a daemon goes away. (asyncio's pipe transports cannot be used on such a
descriptor: they take it being readable, which our own unread commands make it, for the other
end closing.) Writes are non-blocking; what the FIFO cannot take at once waits here, up to a bound.
"""

from __future__ import annotations

import asyncio
import os

from wingman.engine.environments.base import RuntimeFailure

BACKLOG = 64 * 1024  # bytes waiting here at most: a server that reads nothing gets no more


class ConsoleInput:
    def __init__(self, fd: int):
        self._fd: int | None = fd
        self._pending = bytearray()

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write(self, data: bytes) -> None:
        if self._fd is None:
            raise RuntimeFailure("the server process is not running")
        if len(self._pending) + len(data) > BACKLOG:
            raise RuntimeFailure("the server is not reading its console input; the command was not sent")
        if not self._pending:
            try:
                data = data[os.write(self._fd, data) :]
            except BlockingIOError:
                pass
        if data:
            if not self._pending:
                asyncio.get_running_loop().add_writer(self._fd, self._flush)
            self._pending += data

    def _flush(self) -> None:
        fd = self._fd
        if fd is None:  # closed: close() took the writer away with it
            return
        try:
            del self._pending[: os.write(fd, self._pending)]
        except BlockingIOError:
            return
        if not self._pending:
            asyncio.get_running_loop().remove_writer(fd)

    def close(self) -> None:
        if self._fd is None:
            return
        if self._pending:
            asyncio.get_running_loop().remove_writer(self._fd)
        os.close(self._fd)
        self._fd = None
