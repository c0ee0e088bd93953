"""Authentications take turns: at most a few run in one turn of the event loop.

An `auth` costs the loop about 0.2 ms (the JWT's signature and claims, following the server, the
first `status` and `stats`). When a Panel's page reload makes hundreds of sockets authenticate at
once, their frames arrive together, and each turn of the loop ran every one of them before
anything else: a `GET /api/system` that arrived meanwhile waited behind 500 of them at each of its
own steps (p99 53-96 ms). Here they wait their turn in arrival order, `per_turn` at a time, and
whatever else is ready runs between two batches.
"""

from __future__ import annotations

import asyncio
from collections import deque

PER_TURN = 8


class Admissions:
    def __init__(self, per_turn: int = PER_TURN):
        self.per_turn = per_turn
        self._waiting: deque[asyncio.Future] = deque()
        self._worker: asyncio.Task | None = None

    async def turn(self) -> None:
        """Return when this authentication may run: the next turn, when fewer than `per_turn` wait."""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        self._waiting.append(ready)
        if self._worker is None:
            self._worker = loop.create_task(self._grant(), name="ws-admissions")
        await ready

    async def _grant(self) -> None:
        try:
            while self._waiting:
                for _ in range(min(self.per_turn, len(self._waiting))):
                    ready = self._waiting.popleft()
                    if not ready.done():  # its socket may have closed meanwhile
                        ready.set_result(None)
                # The granted ones run in the next turn, with whatever else is ready by then; this
                # task runs after them, and grants the next batch.
                await asyncio.sleep(0)
        finally:
            self._worker = None
