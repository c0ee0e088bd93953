"""The live servers: one ServerView per stream, kept current by folding each committed event.

The registry subscribes to the store, so the only way to change a server is to append an event.
The statechart machine holds each server's power state; `StateChanged` events fire it after they
are durable, and callers ask `can_fire` before they append one.
"""
from __future__ import annotations

from collections import OrderedDict

from engine.events import (
    ConfigurationChanged, Metadata, NewEvent, RecordedEvent, ServerDeleted, ServerRegistered,
    ServerSuspended, ServerUnsuspended,
)
from engine.servers.definition import ServerConfig, changed_keys, parse_definition
from engine.servers.fold import OUTCOME_TYPES, Operation, ServerView, apply, new_view, operation_from_events
from engine.statechart import PowerMachine
from engine.store.event_store import NO_STREAM, EventStore


RECENT_OPERATIONS = 10_000


class UnknownServer(KeyError):
    def __init__(self, uuid: str):
        super().__init__(uuid)
        self.uuid = uuid

    def __str__(self) -> str:
        return f"no server {self.uuid} on this node"


class ServerExists(Exception):
    pass


class ServerRegistry:
    def __init__(self, store: EventStore, machine: PowerMachine | None = None):
        self.store = store
        self.machine = machine or PowerMachine()
        self.views: dict[str, ServerView] = {}  # live (not deleted) servers
        self._all: dict[str, ServerView] = {}  # every stream seen, deleted ones included
        self._unsubscribe = None
        # Finished operations leave the views (memory stays bounded over a long log); the most
        # recent stay at hand here, older ones are read back from the log by their index.
        self.recently_finished: OrderedDict[str, Operation] = OrderedDict()

    async def load(self, snapshots=None) -> None:
        """Fold the log, then follow the store's commits. With a snapshot cache, streams longer
        than a snapshot interval start from their latest checked snapshot instead of event 1."""
        if snapshots is not None and await self._long_streams(snapshots.every):
            from engine.servers.replay import END, state_at, streams

            for stream_id in await streams(self.store.engine):
                self._install((await state_at(self.store.engine, stream_id, END, snapshots, self.machine.chart)).view)
        else:
            async for ev in self.store.iterate_all():
                self._apply(ev)
        self._unsubscribe = self.store.subscribe(self._on_commit)

    async def _long_streams(self, every: int) -> bool:
        """Whether the average stream is long enough for snapshots to save work."""
        count, streams = await self.store.size()
        return every > 0 and streams > 0 and count / streams > every

    def _install(self, view: ServerView) -> None:
        self._all[view.uuid] = view
        if not view.deleted:
            self.views[view.uuid] = view
            self.machine.add(view.uuid)
            self._sync_machine(view.uuid, view.state)

    def close(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()

    def _on_commit(self, events: list[RecordedEvent]) -> None:
        for ev in events:
            self._apply(ev)

    def _apply(self, ev: RecordedEvent) -> None:
        view = self._all.get(ev.stream_id)
        if view is None:
            view = self._all[ev.stream_id] = new_view(ev.stream_id, self.machine.chart)
        before = view.state
        apply(view, ev, self.machine.chart, keep_operations=True)
        if ev.type in OUTCOME_TYPES:
            self._finish(view, ev.data["operation_id"])
        if ev.type == "server.deleted":
            self.views.pop(ev.stream_id, None)
            self.machine.remove(ev.stream_id)
            view.operations.clear()
            return
        if ev.stream_id not in self.views and not view.deleted:
            self.views[ev.stream_id] = view
            self.machine.add(ev.stream_id)
            # A re-registered stream starts its machine where the log left the server.
            self._sync_machine(ev.stream_id, view.state)
        elif ev.type == "state.changed" and view.state != before:
            self.machine.fire(ev.stream_id, ev.data["trigger"])

    def _finish(self, view: ServerView, operation_id: str) -> None:
        op = view.operations.pop(operation_id, None)
        if op is not None:
            self.recently_finished[operation_id] = op
            while len(self.recently_finished) > RECENT_OPERATIONS:
                self.recently_finished.popitem(last=False)

    def _sync_machine(self, uuid: str, state: str) -> None:
        self.machine.machine.set_state(state, model=self.machine._models[uuid])

    # -- queries -------------------------------------------------------------------------------

    def get(self, uuid: str) -> ServerView:
        try:
            return self.views[uuid]
        except KeyError:
            raise UnknownServer(uuid) from None

    def view_of(self, stream_id: str) -> ServerView | None:
        """Any stream's view, deleted servers included (None when the log has no such stream)."""
        return self._all.get(stream_id)

    def config(self, uuid: str) -> ServerConfig:
        cfg = self.get(uuid).config
        if cfg is None:
            raise UnknownServer(uuid)
        return cfg

    async def find_operation(self, operation_id: str) -> tuple[Operation | None, list[RecordedEvent]]:
        """The operation and its events, both taken from the same read of the log.

        The status is folded from the events returned, never from the live view: the view can
        move on between the read and the answer, and a caller must not see "succeeded" beside
        an event list that does not yet hold the success."""
        events = await self.store.events_for_operation(operation_id)
        return operation_from_events(events), events

    def operation_in_memory(self, operation_id: str) -> Operation | None:
        op = self.recently_finished.get(operation_id)
        if op is not None:
            return op
        for view in self.views.values():
            op = view.operations.get(operation_id)
            if op is not None:
                return op
        return None

    # -- commands ------------------------------------------------------------------------------

    async def register(self, definition: dict, meta: Metadata) -> ServerView:
        cfg = parse_definition(definition)
        if cfg.uuid in self.views:
            raise ServerExists(f"server {cfg.uuid} already exists")
        version = self.store.version(cfg.uuid)
        await self.store.append(
            cfg.uuid, [NewEvent.of(ServerRegistered(definition=cfg.definition), meta)], expected_version=version or NO_STREAM
        )
        return self.views[cfg.uuid]

    async def update(self, uuid: str, definition: dict, meta: Metadata) -> list[str]:
        """Record a new definition when it differs; returns the changed keys (empty: no event)."""
        view = self.get(uuid)
        cfg = parse_definition(definition)
        if cfg.uuid != uuid:
            raise ValueError(f"definition is for server {cfg.uuid}, not {uuid}")
        keys = changed_keys(view.config.definition if view.config else {}, cfg.definition)
        if keys:
            records = [NewEvent.of(ConfigurationChanged(definition=cfg.definition, changed_keys=keys), meta)]
            if cfg.suspended != view.suspended:  # said in words too, for auditors scanning by type
                records.append(NewEvent.of(ServerSuspended() if cfg.suspended else ServerUnsuspended(), meta))
            await self.store.append(uuid, records, expected_version=view.version)
        return keys

    async def set_suspended(self, uuid: str, suspended: bool, meta: Metadata) -> None:
        view = self.get(uuid)
        if view.suspended != suspended:
            record = ServerSuspended() if suspended else ServerUnsuspended()
            await self.store.append(uuid, [NewEvent.of(record, meta)], expected_version=view.version)

    async def delete(self, uuid: str, meta: Metadata) -> None:
        view = self.get(uuid)
        await self.store.append(uuid, [NewEvent.of(ServerDeleted(), meta)], expected_version=view.version)
