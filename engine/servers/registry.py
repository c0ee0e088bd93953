"""The live servers: one ServerView per stream, kept current by folding each committed event.

The registry subscribes to the store, so the only way to change a server is to append an event.
Each view's power state is held by its position in the chart (engine.statechart.ChartPosition),
which the fold moves when a `state.changed` event is committed; nothing else writes it. Callers
ask `may_fire` (under their own per-server ordering) before they append a state change; the
answer is the chart's one (its table compiled from the `transitions` machine).

In a fleet's shared database (docs/fleet.md) a node holds its own servers only: at boot it leaves
out every stream another node owns (its `stream_owners` row names another node), unless the
caller names it as one of its own (`load(also=...)`; the daemon names none yet). Streams no node
has claimed (history from before node ids) are loaded, as on a database of one node, where nothing
is left out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

import structlog

from wingman.engine.event_types import EventType
from wingman.engine.events import (
    ConfigurationChanged,
    Metadata,
    NewEvent,
    RecordedEvent,
    ServerDeleted,
    ServerRegistered,
    ServerSuspended,
    ServerUnsuspended,
)
from wingman.engine.panel_events import is_node_stream
from wingman.engine.servers.definition import ServerConfig, changed_keys, parse_definition
from wingman.engine.servers.fold import ServerView, apply, new_view
from wingman.engine.servers.operations import OUTCOME_TYPES, Operation, operation_from_events
from wingman.engine.servers.replay import state_at
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.statechart import PowerMachine
from wingman.engine.store.event_store import NO_STREAM, ConcurrencyError, EventStore
from wingman.engine.store.ownership import owned_elsewhere
from wingman.engine.store.points import END
from wingman.engine.store.queries import stream_versions

log = structlog.get_logger("wingman.registry")

RECENT_OPERATIONS = 10_000
# Streams whose snapshot is missing or behind that boot still folds one by one (beyond that, and
# beyond 2 % of the streams, one pass over the whole log is cheaper).
CATCH_UP_STREAMS = 200
REGISTER_ATTEMPTS = 3  # a registration that met another append to its (deleted) stream tries again


class UnknownServer(KeyError):
    def __init__(self, uuid: str):
        super().__init__(uuid)
        self.uuid = uuid

    def __str__(self) -> str:
        return f"no server {self.uuid} on this node"


class ServerExists(Exception):
    pass


class ServerRegistry:
    def __init__(
        self,
        store: EventStore,
        machine: PowerMachine | None = None,
        admit: Callable[[ServerConfig], ServerConfig] | None = None,
    ):
        self.store = store
        # What this host checks of a definition before recording it (the daemon's: its allocations'
        # IPs are the host's, engine.servers.host_addresses); never applied to the log's replay.
        self.admit = admit or (lambda cfg: cfg)
        self.machine = machine or PowerMachine()
        self.chart = self.machine.chart
        self.views: dict[str, ServerView] = {}  # live (not deleted) servers
        self._all: dict[str, ServerView] = {}  # every stream seen, deleted ones included
        self._unsubscribe: Callable[[], None] | None = None
        # Open operations by id, across servers (a request looks its own up at once). Finished
        # ones leave the views so memory stays bounded over a long log: the most recent stay at
        # hand here, older ones are read back from the log by their index.
        self._open: dict[str, Operation] = {}
        self.recently_finished: OrderedDict[str, Operation] = OrderedDict()
        self.snapshot_versions: dict[str, int] = {}  # streams started from a snapshot at boot, and its version
        # Streams other nodes own, left out at boot and not followed: this node cannot write them.
        self.elsewhere: set[str] = set()

    async def load(self, snapshots: SnapshotCache | None = None, also: Collection[str] = ()) -> None:
        """Fold the log, then follow the store's commits. With a snapshot cache, each stream starts
        from its latest checked snapshot (the daemon saves every stream's at shutdown) and only the
        events after it are folded, stream by stream; when too many streams have none, the whole
        log is folded from the first event instead (one pass beats thousands of small reads).
        Streams another node owns are left out, but for those in `also` (the node's own servers)."""
        node = self.store.node_id
        if node is not None:
            self.elsewhere = await owned_elsewhere(self.store.engine, node) - set(also)
            if self.elsewhere:
                log.info("servers of other nodes left out", node=node, streams=len(self.elsewhere))
        if snapshots is None or not await self._load_from_snapshots(snapshots):
            async for ev in self.store.iterate_all():
                self._apply(ev)
        self._unsubscribe = self.store.subscribe(self._on_commit)

    async def _load_from_snapshots(self, snapshots: SnapshotCache) -> bool:
        heads = await snapshots.heads(self.chart)
        versions = {
            sid: v
            for sid, v in self.store.stream_versions().items()
            if not is_node_stream(sid) and sid not in self.elsewhere
        }
        behind = [sid for sid, v in versions.items() if sid not in heads or heads[sid].version < v]
        if not heads or len(behind) > max(CATCH_UP_STREAMS, len(versions) // 50):
            return False
        for sid in versions:  # the log's order, as a full fold would meet them
            if sid in heads:
                self._install(heads[sid].view)
                self.snapshot_versions[sid] = heads[sid].version
        for sid in behind:
            if sid not in heads and snapshots.every > 0 and versions[sid] >= snapshots.every:
                replayed = (await state_at(self.store.engine, sid, END, snapshots, self.chart)).view
                if replayed is not None:  # the stream has events (`versions` counts them): always
                    self._install(replayed)
                    continue
            view = self._all.get(sid)
            async for ev in stream_versions(self.store.engine, sid, view.version if view else 0):
                self._apply(ev)
        return True

    def _install(self, view: ServerView) -> None:
        """A view replayed elsewhere joins the registry, its position checked against the chart."""
        self._all[view.uuid] = view
        self._open.update(view.operations)
        if not view.deleted:
            view.power = self.machine.model(view.uuid, view.state)
            self.views[view.uuid] = view

    def close(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()

    def _on_commit(self, events: list[RecordedEvent]) -> None:
        for ev in events:
            try:
                self._apply(ev)
            except Exception:
                log.exception("could not fold a committed event", stream=ev.stream_id, version=ev.version, type=ev.type)

    def _apply(self, ev: RecordedEvent) -> None:
        if is_node_stream(ev.stream_id) or ev.stream_id in self.elsewhere:  # the node's own facts; another's server
            return
        view = self._all.get(ev.stream_id)
        if view is None:
            view = self._all[ev.stream_id] = new_view(ev.stream_id, power=self.machine.model(ev.stream_id))
            self.views[ev.stream_id] = view
        elif view.deleted and ev.type == EventType.SERVER_REGISTERED:
            # A re-registered stream: its position starts where the log left the server.
            view.power = self.machine.model(ev.stream_id, view.state)
            self.views[ev.stream_id] = view
        apply(view, ev, self.chart)
        if ev.type == EventType.POWER_REQUESTED:
            self._open[ev.data["operation_id"]] = view.operations[ev.data["operation_id"]]
        elif ev.type in OUTCOME_TYPES:
            self._finish(view, ev.data["operation_id"])
        elif ev.type == EventType.SERVER_DELETED:
            self._forget(view)

    def _forget(self, view: ServerView) -> None:
        """A deleted server leaves the live set; its view keeps its position."""
        self.views.pop(view.uuid, None)
        for op_id in view.operations:
            self._open.pop(op_id, None)
        view.operations.clear()

    def _finish(self, view: ServerView, operation_id: str) -> None:
        op = view.operations.pop(operation_id, None)
        self._open.pop(operation_id, None)
        if op is not None:
            self.recently_finished[operation_id] = op
            while len(self.recently_finished) > RECENT_OPERATIONS:
                self.recently_finished.popitem(last=False)

    # -- queries -------------------------------------------------------------------------------

    def get(self, uuid: str) -> ServerView:
        try:
            return self.views[uuid]
        except KeyError:
            raise UnknownServer(uuid) from None

    def state(self, uuid: str) -> str:
        return self.get(uuid).state

    def may_fire(self, uuid: str, trigger: str) -> bool:
        """Whether the statechart allows `trigger` from the server's current state."""
        return self.get(uuid).power.may(trigger)

    def all_views(self) -> list[ServerView]:
        """Every stream's view, deleted servers included."""
        return list(self._all.values())

    def view_of(self, stream_id: str) -> ServerView | None:
        """Any stream's view, deleted servers included (None when the log has no such stream)."""
        return self._all.get(stream_id)

    def config(self, uuid: str) -> ServerConfig:
        cfg = self.get(uuid).config
        if cfg is None:
            raise UnknownServer(uuid)
        return cfg

    def open_operations(self, uuid: str) -> list[Operation]:
        """The server's operations that have no outcome yet, in request order."""
        return list(self.get(uuid).operations.values())

    async def find_operation(self, operation_id: str) -> tuple[Operation | None, list[RecordedEvent]]:
        """The operation and its events, both taken from the same read of the log.

        The status is folded from the events returned, never from the live view: the view can
        move on between the read and the answer, and a caller must not see "succeeded" beside
        an event list that does not yet hold the success."""
        events = await self.store.events_for_operation(operation_id)
        return operation_from_events(events), events

    def operation_in_memory(self, operation_id: str) -> Operation | None:
        """An open or recently finished operation, without reading the log."""
        return self._open.get(operation_id) or self.recently_finished.get(operation_id)

    # -- commands ------------------------------------------------------------------------------

    async def register(self, definition: dict[str, Any], meta: Metadata) -> ServerView:
        return await self.register_config(parse_definition(definition), meta)

    async def register_config(self, cfg: ServerConfig, meta: Metadata) -> ServerView:
        """`register` of a definition already parsed."""
        self.admit(cfg)
        # A deleted server's stream still takes facts (its files removed, from the background): a
        # registration that met one tries again, unless the server is back meanwhile.
        attempts = 0
        while True:
            if cfg.uuid in self.views:
                raise ServerExists(f"server {cfg.uuid} already exists")
            version = self.store.version(cfg.uuid)
            try:
                await self.store.append(
                    cfg.uuid,
                    [NewEvent.of(ServerRegistered(definition=cfg.definition), meta)],
                    expected_version=version or NO_STREAM,
                )
                return self.views[cfg.uuid]
            except ConcurrencyError:
                attempts += 1
                if attempts == REGISTER_ATTEMPTS:
                    raise

    async def update(self, uuid: str, definition: dict[str, Any], meta: Metadata) -> list[str]:
        """Record a new definition when it differs; returns the changed keys (empty: no event)."""
        cfg = parse_definition(definition)
        if cfg.uuid != uuid:
            raise ValueError(f"definition is for server {cfg.uuid}, not {uuid}")
        return await self.update_to(cfg, meta)

    async def update_to(self, cfg: ServerConfig, meta: Metadata) -> list[str]:
        """`update` with a definition already parsed."""
        self.admit(cfg)
        uuid = cfg.uuid
        view = self.get(uuid)
        keys = changed_keys(view.definition or {}, cfg.definition)
        if keys:
            records = [NewEvent.of(ConfigurationChanged(definition=cfg.definition, changed_keys=keys), meta)]
            if cfg.suspended != view.suspended:  # said in words too, for auditors scanning by type
                records.append(NewEvent.of(ServerSuspended() if cfg.suspended else ServerUnsuspended(), meta))
            await self.store.append(uuid, records, expected_version=view.version)
        return keys

    async def delete(self, uuid: str, meta: Metadata) -> None:
        view = self.get(uuid)
        await self.store.append(uuid, [NewEvent.of(ServerDeleted(), meta)], expected_version=view.version)
