"""The node as the ways in see it: the one typed façade the HTTP routes, the websocket, the CLI and
the event stream call (issue 27). Each method delegates to the daemon's parts (engine.daemon);
the API never reaches past it, so a request can be followed, by a reader or by mypy, from its
route into the engine. Grouped as the ways in use it: settings, servers, power, console, live
subscriptions, the Panel, audit, the node's facts. engine/ never imports api/."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Collection, Mapping
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.audit.report import Report
from wingman.engine.audit.verify import verify_everything
from wingman.engine.checkpoints.checkpointer import Checkpointer
from wingman.engine.checkpoints.verify import CheckpointReport
from wingman.engine.config import DaemonConfig
from wingman.engine.console.buffer import Listener as ConsoleListener
from wingman.engine.daemon import Daemon
from wingman.engine.events import ConsoleCommand, Metadata, RecordedEvent
from wingman.engine.fleet.node_lock import refuse_power_without
from wingman.engine.install.feed import Listener as InstallListener
from wingman.engine.live.feed import Listener as EventListener
from wingman.engine.live.follow import follow
from wingman.engine.live.utilization import Document, StatsListener
from wingman.engine.metrics.node_metrics import NodeMetrics, Sources
from wingman.engine.schedules.scheduler import Scheduler
from wingman.engine.servers.fold import ServerView
from wingman.engine.servers.operations import Operation
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.statechart import Statechart
from wingman.engine.store.backends import backend_for
from wingman.engine.store.queries import EventFilter, stream_exists

Unsubscribe = Callable[[], None]


class NoPanel(Exception):
    """The node has no Panel (`remote` is not set)."""


class Node:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon  # its lifecycle (start, stop) is the app's

    # -- settings ------------------------------------------------------------------------------

    @property
    def config(self) -> DaemonConfig:
        return self.daemon.config

    @property
    def chart(self) -> Statechart:
        return self.daemon.registry.chart

    @property
    def started_at(self) -> float:
        return self.daemon.started_at

    # -- servers -------------------------------------------------------------------------------

    def server(self, uuid: str) -> ServerView:
        """A live server; UnknownServer (a 404) otherwise."""
        return self.daemon.registry.get(uuid)

    def servers(self) -> Mapping[str, ServerView]:
        """The live servers, by uuid."""
        return self.daemon.registry.views

    def server_status(self, uuid: str) -> dict[str, Any]:
        """What a server's document adds to its folded state: Wings' utilization (the last
        sample), boot recovery's word on it, an exit seen but not in the log yet."""
        d = self.daemon
        return {
            "utilization": d.utilization.document(uuid),
            "recovery": d.recovery.status(uuid),
            "exit_pending": d.processes.exit_pending(uuid),
        }

    async def register(self, definition: dict[str, Any], meta: Metadata) -> ServerView:
        return await self.daemon.registry.register(definition, meta)

    async def delete(self, uuid: str, meta: Metadata) -> None:
        await self.daemon.power.delete_server(uuid, meta)

    async def reinstall(self, uuid: str, meta: Metadata) -> str:
        return await self.daemon.installs.reinstall(uuid, meta)

    async def stream_exists(self, stream: str) -> bool:
        """The log knows this server's stream (deleted servers included)."""
        return await stream_exists(self.daemon.db, stream)

    # -- power ---------------------------------------------------------------------------------

    async def request_power(self, uuid: str, action: str, wait_seconds: int | None, meta: Metadata) -> Operation:
        """Record a power request (durably) and run it in the background (PowerService.request);
        refused while the daemon does not hold its node id (engine.fleet.node_lock)."""
        refuse_power_without(self.daemon.node_lock)
        return await self.daemon.power.request(uuid, action, wait_seconds, meta)

    async def operation(self, operation_id: str) -> tuple[Operation | None, list[RecordedEvent]]:
        return await self.daemon.registry.find_operation(operation_id)

    def operation_in_memory(self, operation_id: str) -> Operation | None:
        return self.daemon.registry.operation_in_memory(operation_id)

    async def settled(self, operation_id: str) -> None:
        """Returns once the operation has its outcome."""
        await self.daemon.power.settled(operation_id)

    def installing(self, uuid: str) -> bool:
        return self.daemon.power.installs.installing(uuid)

    def lock_busy(self, uuid: str) -> bool:
        return self.daemon.power.lock_busy(uuid)

    @property
    def schedules(self) -> Scheduler:
        """The servers' scheduled power actions (engine.schedules)."""
        return self.daemon.schedules

    # -- console -------------------------------------------------------------------------------

    def recent_operations(self, uuid: str, limit: int = 20) -> list[Operation]:
        """The server's operations still open and those finished lately (held in memory since
        the daemon started), newest first."""
        registry = self.daemon.registry
        mine = [op for op in registry.recently_finished.values() if op.server == uuid]
        ops = registry.open_operations(uuid) + mine
        ops.sort(key=lambda op: op.requested_at or datetime.min.replace(tzinfo=UTC), reverse=True)
        return ops[:limit]

    @property
    def last_position(self) -> int:
        """The log's last committed position (where a follower of what comes next starts)."""
        return self.daemon.store.last_position

    def console_tail(self, uuid: str, lines: int) -> list[str]:
        return self.daemon.processes.console_tail(uuid, lines)

    def running(self, uuid: str) -> bool:
        """A process or container of the server is in hand (commands can be sent to it)."""
        return self.daemon.processes.handle(uuid) is not None

    async def record_command(self, uuid: str, command: str, meta: Metadata) -> None:
        """A console command, durable before the console sees it (the Panel's activity log)."""
        await self.daemon.journal.append_now(uuid, [ConsoleCommand(command=command)], meta)

    async def send_command(self, uuid: str, command: str) -> None:
        await self.daemon.processes.send_command(uuid, command)

    # -- live: what a watcher subscribes to (each returns the way to stop) ----------------------

    def utilization(self, uuid: str) -> Document:
        return self.daemon.utilization.document(uuid)

    def subscribe_events(self, listener: EventListener, uuid: str | None = None) -> Unsubscribe:
        return self.daemon.feed.listen(listener, uuid)

    def subscribe_console(self, uuid: str, listener: ConsoleListener) -> Unsubscribe:
        return self.daemon.processes.console(uuid).listen(listener)

    def subscribe_stats(self, uuid: str, listener: StatsListener) -> Unsubscribe:
        return self.daemon.utilization.listen(uuid, listener)

    def subscribe_install(self, uuid: str, listener: InstallListener) -> Unsubscribe:
        return self.daemon.installs.feed.listen(uuid, listener)

    def follow(
        self, flt: EventFilter, after: int, capacity: int, idle: float | None
    ) -> AsyncGenerator[list[RecordedEvent], None]:
        """Every matching event after `after`, stored then live (engine.live.follow)."""
        return follow(self.daemon.feed, self.daemon.db, flt, after, capacity, idle)

    def token_denied_at(self, jti: str | None) -> float | None:
        return self.daemon.denylist.denied_at(jti)

    async def deny_tokens(self, uuid: str, jtis: list[str], meta: Metadata) -> None:
        await self.daemon.denylist.deny(uuid, jtis, meta)

    # -- the Panel -----------------------------------------------------------------------------

    @property
    def has_panel(self) -> bool:
        return self.daemon.panel is not None

    async def create_from_panel(self, uuid: str, start_on_completion: bool, meta: Metadata) -> ServerView:
        """Wings' create: the definition fetched from the Panel, then the install. NoPanel without one."""
        if self.daemon.panel is None:
            raise NoPanel()
        return await self.daemon.panel.servers.create(uuid, start_on_completion, meta)

    async def sync(self, uuid: str, meta: Metadata) -> list[str]:
        """The server's definition fetched from the Panel now; the keys that changed. NoPanel without one."""
        if self.daemon.panel is None:
            raise NoPanel()
        return await self.daemon.panel.servers.sync(uuid, meta)

    # -- audit ---------------------------------------------------------------------------------

    @property
    def db(self) -> AsyncEngine:
        """The database, for the audit's and the diagrams' reads of the log."""
        return self.daemon.db

    @property
    def snapshot_cache(self) -> SnapshotCache:
        return self.daemon.snapshot_cache

    @property
    def checkpointer(self) -> Checkpointer:
        return self.daemon.checkpointer

    async def verify(
        self, stream: str | None, key: str, held: Collection[str] | None = None
    ) -> tuple[Report, CheckpointReport | None]:
        """Verify the log (or one server's stream) against `key`, the checkpoint file and the live state
        (of the streams `held`: in a fleet's database, the node's own; engine.audit.verify)."""
        d = self.daemon
        file: Path = d.config.checkpoint_file_path
        return await verify_everything(
            d.db,
            stream,
            key,
            file if file.is_file() else None,
            live=d.registry.views,
            in_hand=d.power.in_hand,
            held=held,
        )

    # -- the node's facts ----------------------------------------------------------------------

    def facts(self) -> dict[str, Any]:
        """The daemon's own facts (`GET /api/system`'s `wingman`)."""
        d = self.daemon
        return {
            "uptime_seconds": round(time.time() - d.started_at, 1),
            "servers": len(d.registry.views),
            "runtimes": sorted(d.runtimes),
            "database": backend_for(d.config.database_url).name,
            "events": d.store.last_position,
            "boot_recovery": {**d.recovered, "restoring": d.recovery.pending, "done": d.recovery.done.is_set()},
            "settled": d.settled.is_set(),
        }

    # -- metrics -------------------------------------------------------------------------------

    @cached_property
    def metrics(self) -> NodeMetrics:
        """The node's Prometheus families (engine.metrics); the app starts them and scrapes them."""
        d = self.daemon
        url = make_url(d.config.database_url)
        outboxes = d.activity.outboxes if d.activity is not None else []
        return NodeMetrics(
            Sources(
                db=d.db,
                subscribe=d.store.subscribe,
                servers=lambda: d.registry.views,
                states=list(d.registry.chart.states),
                utilization=d.utilization,
                checkpoints=d.checkpointer,
                outbox_positions=lambda: {o.task_name: o.cursor.position for o in outboxes},
                failed_commits=lambda: d.store.failed_commits,
                database_file=Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None,
                per_server=d.config.metrics.per_server,
                node_id=d.config.node_id,
            )
        )
