"""One socket's outbound frames: a bounded queue and the one task that writes them, in order.

Frames are put from the store's commit (a `status`), a console line, a stats sample or the
socket's own answers, always without waiting: the writer task alone waits for the client. So a
client that reads slowly holds up nobody but itself; when it falls `capacity` frames behind, the
outbox drops what is waiting and asks for the socket to be closed with the reason (the client
reconnects and authenticates again, and gets the current state at once).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

OVERFLOW_CODE = 1013  # "try again later": the client may reconnect at once


class Outbox:
    def __init__(self, send: Callable[[str], Awaitable[None]], capacity: int, on_overflow: Callable[[int, str], None]):
        self._send = send
        self.capacity = capacity
        self._on_overflow = on_overflow
        self._frames: deque[str] = deque()
        self._ready = asyncio.Event()
        self._finishing = False
        self.closed = False
        self.sent = 0

    def put(self, frame: str) -> bool:
        """Queue a frame; False when the outbox is closed (or just overflowed and closed)."""
        if self.closed or self._finishing:
            return False
        if len(self._frames) >= self.capacity:
            self.closed = True
            self._frames.clear()
            self._ready.set()
            self._on_overflow(OVERFLOW_CODE, f"the client reads too slowly: {self.capacity} frames were waiting")
            return False
        self._frames.append(frame)
        self._ready.set()
        return True

    @property
    def waiting(self) -> int:
        return len(self._frames)

    def finish(self) -> None:
        """Take no more frames; the writer returns once those waiting are written."""
        self._finishing = True
        self._ready.set()

    async def run(self) -> None:
        """The writer: returns when the outbox is closed, or finished and drained."""
        while True:
            while not self._frames:
                if self.closed or self._finishing:
                    return
                self._ready.clear()
                await self._ready.wait()
            if self.closed:
                return
            await self._send(self._frames.popleft())
            self.sent += 1
