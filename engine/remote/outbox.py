"""What both outboxes to the Panel share (activity: engine.remote.activity; Pelican's container
status: engine.remote.activity_container_status): a durable cursor in the log, loaded at start,
and a loop that sends what lies after it every `interval` seconds. A failed round is logged and
the next one tries again: the Panel's troubles never reach the writer or the API."""

from __future__ import annotations

import asyncio

import structlog

from wingman.engine.remote.activity_cursor import OutboxCursor
from wingman.engine.remote.client import PanelClient
from wingman.engine.store.event_store import EventStore

STOP_GRACE = 5.0  # seconds a batch in flight at shutdown may take to be answered (and its cursor committed)


class Outbox:
    task_name = "panel-outbox"
    failure = "sending to the Panel failed; trying again at the next interval"

    def __init__(self, store: EventStore, client: PanelClient, cursor_name: str, interval: float):
        self._store = store
        self._client = client
        self.interval = interval
        self.cursor = OutboxCursor(store, cursor_name)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._log = structlog.get_logger(f"wingman.{self.task_name}")

    async def start(self) -> None:
        await self.cursor.load()
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        """Stop sending (what is not sent stays in the log for the next start). A batch in
        flight gets a moment to be answered: cancelled after the Panel took it but before the
        cursor moved, it would be sent again at the next start."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=STOP_GRACE)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._client.aclose()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.interval)
                return
            except TimeoutError:
                pass
            try:
                await self.send_pending()
            except Exception:  # noqa: BLE001 - isolated: the next interval tries again
                self._log.exception(self.failure)

    async def send_pending(self) -> object:
        """Send what lies after the cursor, and move the cursor past what the Panel took."""
        raise NotImplementedError
