"""Replay snapshots kept current by the running daemon, so a point-in-time answer never folds more
than one snapshot interval, even for the first question about a server.

The registry already folds every committed event; every `every` events of a stream, its view (its open
operations only, as replay keeps it) is serialised and handed to the snapshot cache. At boot, streams
whose snapshots are missing or stale are brought up to date in the background. At a clean shutdown
every stream that moved since its last snapshot gets one of where it stands (its head), so the next
boot starts each server from there and folds nothing. Snapshots stay a cache: replay and the
registry check each one against the log before they trust it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from wingman.engine.events import RecordedEvent
from wingman.engine.servers.registry import ServerRegistry
from wingman.engine.servers.replay import build_snapshots
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.store.event_store import EventStore

log = structlog.get_logger("wingman.audit")


class SnapshotWriter:
    def __init__(self, store: EventStore, registry: ServerRegistry, cache: SnapshotCache):
        self.store = store
        self.registry = registry
        self.cache = cache
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # Subscribed after the registry, so views are current when we look at them.
        self._unsubscribe = self.store.subscribe(self._on_commit)
        self._task = asyncio.create_task(self._run(), name="live-snapshots")

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.cache.save(self._pending)
        self._pending = []
        await self.save_heads()

    async def save_heads(self) -> None:
        """A snapshot of every stream where it stands now, unless it already has one there."""
        have = dict(self.registry.snapshot_versions)
        rows = []
        for view in self.registry.all_views():
            version, head_hash = self.store.head(view.uuid)
            if (
                view.version == version
                and version > 0
                and have.get(view.uuid) != version
                and not self.cache.due(version)
            ):  # on the grid: saved as it was committed
                rows.append(self.cache.row(view, head_hash))
        await self.cache.save(rows, heads=True)
        for r in rows:
            self.registry.snapshot_versions[r["stream_id"]] = r["version"]
        if rows:
            log.info("replay snapshots of every server saved for the next boot", streams=len(rows))

    def _on_commit(self, events: list[RecordedEvent]) -> None:
        for ev in events:
            if not self.cache.due(ev.version):
                continue
            view = self.registry.view_of(ev.stream_id)
            # Only when the view stands exactly at this event (a group may hold later ones).
            if view is not None and not view.deleted and view.version == ev.version:
                self._pending.append(self.cache.row(view, ev.hash))
                self._wake.set()

    async def _run(self) -> None:
        try:
            folded = await build_snapshots(self.store.engine, self.cache)
            log.info("replay snapshots up to date", events_folded=folded)
        except Exception as exc:  # noqa: BLE001 - a cache: a failure here costs speed, never correctness
            log.warning("replay snapshots not rebuilt at boot", error=str(exc))
        while True:
            await self._wake.wait()
            self._wake.clear()
            rows, self._pending = self._pending, []
            await self.cache.save(rows)
