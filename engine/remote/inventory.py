"""The servers of a node that has a Panel (`remote`) come from the Panel, as in Wings
(`server/manager.go`: the boot loads what `GET /api/remote/servers` lists, then
`POST /api/remote/servers/reset`). Unlike Wings, a Panel that is down does not stop the node:

- the node boots from the definitions it last recorded (the registry's log) and serves its API;
- the inventory is tried again with a capped backoff, each failure logged and recorded once
  (`panel.inventory_failed`: the first, and again only when the reason changes);
- when the Panel answers, the node reconciles with its list (`panel.inventory_reconciled`):
  listed servers are registered or their definitions updated; a server it lists no more is
  removed (`server.deleted`, cause `panel_unlisted`: its history stays, its folder too);
- a server it lists no more that is not offline is not stopped behind anyone's back: it is
  recorded as `panel.server_unlisted`, stays manageable, and is removed once it is offline.

The list is read and checked whole before anything changes (engine.remote.listing); an entry
the node cannot take is `panel.server_refused` and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import structlog

from wingman.engine import heap
from wingman.engine.event_types import Cause
from wingman.engine.events import Event, Metadata
from wingman.engine.panel_events import (
    InventoryFailed,
    InventoryReconciled,
    PanelServerRefused,
    PanelServerUnlisted,
    node_stream,
)
from wingman.engine.remote.client import PanelClient, PanelError
from wingman.engine.remote.documents import BadPanelDocument, with_runtime
from wingman.engine.remote.listing import Listing, ListingFailed, list_servers
from wingman.engine.servers.definition import InvalidDefinition, parse_definition
from wingman.engine.servers.registry import ServerRegistry
from wingman.engine.store.event_store import ConcurrencyError

log = structlog.get_logger("wingman.panel")
RESET_PATH = "/api/remote/servers/reset"
BATCH = 500  # servers recorded at once (the store's largest group, as for the config file)
REFUSALS_RECORDED = 100  # per inventory: a Panel sending 10,000 bad entries gets a count, not 10,000 events
RETRY_FIRST = 1.0
REMOVAL_CHECK_SECONDS = 5.0  # how often servers awaiting removal are looked at again
INVENTORY = Metadata(actor="panel", channel="panel", cause=Cause.PANEL_INVENTORY)
UNLISTED = Metadata(actor="panel", channel="panel", cause=Cause.PANEL_UNLISTED)

Recorder = Callable[..., Awaitable[object]]  # Journal.record(stream, *events, meta=...)
HasProcess = Callable[[str], bool]  # whether something of the server still runs (ProcessTracker.handle)


class Inventory:
    def __init__(
        self,
        client: PanelClient,
        registry: ServerRegistry,
        record: Recorder,
        has_process: HasProcess,
        per_page: int,
        max_servers: int,
        retry_max: float,
        may_record: asyncio.Event,
        remote_runtime: str = "docker",
    ):
        self.client = client
        self.remote_runtime = remote_runtime  # of a listed server whose definition names none
        self.registry = registry
        self._record = record
        self._has_process = has_process
        self.per_page = per_page
        self.max_servers = max_servers
        self.retry_max = retry_max
        self._may_record = may_record  # set once boot recovery is done: no appends race its own
        self.reconciled = asyncio.Event()
        self.awaiting_removal: set[str] = set()

    async def run(self) -> None:
        """Until the Panel has been listed and the node reconciled; then removes, as they stop,
        the servers it listed no more."""
        attempt, last_reason = 0, None
        while True:
            attempt += 1
            try:
                listing = await list_servers(self.client, self.per_page, self.max_servers)
                break
            except ListingFailed as exc:
                delay = min(self.retry_max, RETRY_FIRST * 2 ** min(attempt - 1, 30))
                if exc.reason != last_reason:
                    log.warning(
                        "the Panel's server list could not be read; going on with the servers last "
                        "recorded, and trying again",
                        reason=exc.reason,
                        attempt=attempt,
                        retry_in_seconds=delay,
                        servers=len(self.registry.views),
                    )
                    await self._note(
                        InventoryFailed(
                            attempt=attempt,
                            reason=exc.reason,
                            retry_in_seconds=delay,
                            servers_recorded=len(self.registry.views),
                        )
                    )
                last_reason = exc.reason
                await asyncio.sleep(delay)
        await self._may_record.wait()
        counts = await self.reconcile(listing)
        del listing
        reset_error = await self._reset()
        await self._note(InventoryReconciled(attempts=attempt, reset_error=reset_error, **counts))
        log.info("servers reconciled with the Panel", attempts=attempt, reset_error=reset_error, **counts)
        self.reconciled.set()
        heap.settle()  # the listing's definitions are gone: their memory goes back to the system
        while self.awaiting_removal:
            await asyncio.sleep(REMOVAL_CHECK_SECONDS)
            for uuid in list(self.awaiting_removal):
                await self._remove_if_offline(uuid)

    def listed_again(self, uuid: str) -> None:
        """The Panel sent this server's definition since (a sync, a create): it stays."""
        self.awaiting_removal.discard(uuid)

    async def reconcile(self, listing: Listing) -> dict[str, int]:
        counts = {
            "pages": listing.pages,
            "listed": len(listing.servers),
            "registered": 0,
            "updated": 0,
            "unchanged": 0,
            "removed": 0,
            "removal_pending": 0,
            "refused": len(listing.refused),
        }
        refusals = list(listing.refused)
        batch: list[tuple[str, bytes]] = []
        for uuid, raw in listing.servers.items():
            if raw is not None:
                batch.append((uuid, raw))
            if len(batch) == BATCH:
                await self._record_batch(batch, counts, refusals)
                batch = []
        await self._record_batch(batch, counts, refusals)
        for problem in refusals[:REFUSALS_RECORDED]:
            log.error(
                "a server the Panel listed was refused; nothing of it changed",
                server=problem.uuid,
                reason=problem.reason,
            )
            await self._note(PanelServerRefused(uuid=problem.uuid, reason=problem.reason, source="inventory"))
        unlisted = [uuid for uuid in self.registry.views if uuid not in listing.servers]
        for i in range(0, len(unlisted), BATCH):
            for removed in await asyncio.gather(*(self._unlist(u) for u in unlisted[i : i + BATCH])):
                counts["removed" if removed else "removal_pending"] += 1
        return counts

    async def _record_batch(
        self, batch: list[tuple[str, bytes]], counts: dict[str, int], refusals: list[BadPanelDocument]
    ) -> None:
        configs = []
        for uuid, raw in batch:
            try:
                definition = with_runtime(orjson.loads(raw), self.remote_runtime)
                configs.append(self.registry.admit(parse_definition(definition)))  # its IPs: this host's
            except InvalidDefinition as exc:
                refusals.append(BadPanelDocument(f"the server's definition is not valid: {exc}", uuid))
                counts["refused"] += 1
        results = await asyncio.gather(
            *(
                self.registry.update_to(cfg, INVENTORY)
                if cfg.uuid in self.registry.views
                else self.registry.register_config(cfg, INVENTORY)
                for cfg in configs
            ),
            return_exceptions=True,
        )
        for cfg, result in zip(configs, results, strict=False):
            if isinstance(result, Exception):
                log.error("a server the Panel listed could not be recorded", server=cfg.uuid, problem=str(result))
                refusals.append(BadPanelDocument(f"could not be recorded: {result}", cfg.uuid))
                counts["refused"] += 1
            elif isinstance(result, list):
                counts["updated" if result else "unchanged"] += 1
            else:
                counts["registered"] += 1

    async def _unlist(self, uuid: str) -> bool:
        """Remove a server the Panel lists no more; False when it must wait until it is offline."""
        if await self._remove_if_offline(uuid):
            return True
        view = self.registry.views.get(uuid)
        if view is not None:
            log.warning(
                "the Panel lists this server no more; it is removed once it is offline", server=uuid, state=view.state
            )
            await self._record(uuid, PanelServerUnlisted(state=view.state), meta=UNLISTED)
        return False

    async def _remove_if_offline(self, uuid: str) -> bool:
        """Record the server removed if it is offline with nothing of it running or in hand.

        Not the API's delete (a Wings delete kills the server and removes its folder): the Panel
        not listing a server is no order to destroy anything, so its folder stays for the operator.
        The append expects the version looked at, so an action requested meanwhile wins."""
        view = self.registry.views.get(uuid)
        if view is None:
            self.awaiting_removal.discard(uuid)
            return True
        if view.state != self.registry.chart.initial or view.operations or self._has_process(uuid):
            self.awaiting_removal.add(uuid)
            return False
        try:
            await self.registry.delete(uuid, UNLISTED)
        except ConcurrencyError:
            self.awaiting_removal.add(uuid)
            return False
        self.awaiting_removal.discard(uuid)
        log.info("the Panel lists this server no more: removed (its history and folder are kept)", server=uuid)
        return True

    async def _reset(self) -> str | None:
        """Wings' last step of a boot: the Panel marks servers stuck installing or restoring as failed."""
        try:
            await self.client.post_json(RESET_PATH, {})
            return None
        except PanelError as exc:
            log.warning("the Panel did not take the reset of its servers' states", reason=str(exc))
            return exc.reason

    async def _note(self, record: Event) -> None:
        await self._record(node_stream(self.registry.store.node_id), record, meta=INVENTORY)
