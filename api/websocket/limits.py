"""Limits of the websocket: per-socket rate limits and the number of sockets per server.

Rate limits are token buckets (config `websocket.rate_limits`): one per inbound event name, and a
`global` one that every inbound message of the socket draws from, unknown events and messages
before `auth` included. A message over a limit is dropped and answered with
`{"event": "throttled", "args": ["<event>"]}` (`"global"` for the global bucket); the socket stays
open. The frame size limit is the websocket layer's (`websocket.max_frame_bytes`, close code 1009).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wingman.engine.config import Rate

GLOBAL = "global"


class TokenBucket:
    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(rate.burst)
        self.every = rate.every
        self._clock = clock
        self._tokens = self.capacity
        self._at = clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) / self.every)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class InboundLimiter:
    """The buckets of one socket."""

    def __init__(self, rates: dict[str, Rate], clock: Callable[[], float] = time.monotonic):
        self._buckets = {event: TokenBucket(rate, clock) for event, rate in rates.items()}

    def refuse(self, event: str) -> str | None:
        """The bucket that refuses this message (`global` or the event's own), or None."""
        overall = self._buckets.get(GLOBAL)
        if overall is not None and not overall.allow():
            return GLOBAL
        own = self._buckets.get(event) if event != GLOBAL else None
        if own is not None and not own.allow():
            return event
        return None


class SocketCount:
    """Open sockets per server, against `websocket.max_sockets_per_server`."""

    def __init__(self, limit: int):
        self.limit = limit
        self._open: dict[str, int] = {}

    def full(self, uuid: str) -> bool:
        return self._open.get(uuid, 0) >= self.limit

    def take(self, uuid: str) -> bool:
        """Count one more socket for the server; False (nothing counted) when it is at the limit."""
        if self.full(uuid):
            return False
        self._open[uuid] = self._open.get(uuid, 0) + 1
        return True

    def release(self, uuid: str) -> None:
        left = self._open.get(uuid, 0) - 1
        if left > 0:
            self._open[uuid] = left
        else:
            self._open.pop(uuid, None)

    def open(self, uuid: str) -> int:
        return self._open.get(uuid, 0)

    def total(self) -> int:
        """Open sockets on the node (the metrics' gauge)."""
        return sum(self._open.values())
