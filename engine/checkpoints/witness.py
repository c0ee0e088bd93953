"""The optional push of each checkpoint to a witness URL (a Panel extension, a transparency
service, another node): one more copy out of the database's reach.

Best effort by design: a witness that is slow or down costs the daemon nothing but a log line.
Pushes run in the background, in order, one at a time, each with a short timeout; checkpoints
that could not be delivered are not retried (the checkpoint file and the table still hold them,
and each later checkpoint vouches for everything before it).
"""

from __future__ import annotations

import asyncio

import httpx
import structlog

from wingman.engine.checkpoints.format import SignedCheckpoint

log = structlog.get_logger("wingman.checkpoints")
MAX_QUEUED = 1000  # beyond this the oldest undelivered checkpoints are dropped


class Witness:
    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 5.0):
        self.url = url
        self._client = httpx.AsyncClient(timeout=timeout, headers=headers or {})
        self._queue: list[SignedCheckpoint] = []
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    def send(self, signed: list[SignedCheckpoint]) -> None:
        self._queue.extend(signed)
        del self._queue[:-MAX_QUEUED]
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="checkpoint-witness")

    async def _drain(self) -> None:
        while self._queue:
            cp = self._queue.pop(0)
            try:
                resp = await self._client.post(self.url, json=cp.as_dict())
                resp.raise_for_status()
                self.delivered += 1
            except httpx.HTTPError as exc:
                log.warning(
                    "the checkpoint witness did not take a checkpoint",
                    url=self.url,
                    seq=cp.seq,
                    error=str(exc) or type(exc).__name__,
                )

    async def close(self, timeout: float = 5.0) -> None:
        """Give the last pushes (the shutdown checkpoint's among them) a moment, then stop."""
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()
