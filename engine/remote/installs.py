"""Wings' create and sync, for a node with a Panel (`router/router_system.go` postCreateServer,
`router/router_server.go` postServerSync in pterodactyl/wings):

- create (`POST /api/servers` with `{"uuid": ..., "start_on_completion": bool}`): the server's
  definition is fetched from the Panel (`GET /api/remote/servers/{uuid}`) and registered; then,
  in the background, its folder is prepared and the installation reported to the Panel
  (`POST /api/remote/servers/{uuid}/install`, `{"successful": ..., "reinstall": false}`), and the
  server started when `start_on_completion` is set and the installation succeeded;
- sync (`POST /api/servers/{uuid}/sync`): the definition is fetched now and recorded when it changed.

The egg's install script is not run yet (the next issue): until then the report says what was
done, truthfully: successful when the server was registered and its folder prepared, failed with
the reason otherwise (`panel.install_reported` says what was reported and whether the Panel took it).
A definition the Panel serves that the node cannot take is `panel.server_refused`, and the Panel
is told its installation failed."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from engine.environments.base import EnvironmentError_
from engine.environments.server_users import ServerUsers
from engine.events import (
    CAUSE_PANEL_CREATE, CAUSE_PANEL_SYNC, NODE_STREAM, InstallReported, Metadata, PanelServerRefused,
)
from engine.preboot.checks import PrebootFailure, check_permissions
from engine.remote.client import PanelClient, PanelError
from engine.remote.documents import BadPanelDocument, definition_from, server_uuid
from engine.remote.inventory import Inventory
from engine.servers.definition import InvalidDefinition, ServerConfig, parse_definition
from engine.servers.fold import ServerView
from engine.servers.registry import ServerRegistry

log = structlog.get_logger("wingman.panel")

Recorder = Callable[..., Awaitable[object]]  # Journal.record(stream, *events, meta=...)
PowerRequest = Callable[[str, str, "int | None", Metadata], Awaitable[object]]  # PowerService.request
Background = Callable[..., asyncio.Task]  # PowerService.background(coro, name=...)


class PanelRefused(Exception):
    """The Panel's definition of the server cannot be taken (recorded as panel.server_refused)."""


class PanelServers:
    def __init__(self, client: PanelClient, registry: ServerRegistry, record: Recorder, folder: Callable[[str], Path],
                 users: ServerUsers, request_power: PowerRequest, background: Background,
                 inventory: Inventory | None = None):
        self.client = client
        self.registry = registry
        self._record = record
        self._folder = folder
        self._users = users
        self._request_power = request_power
        self._background = background
        self._inventory = inventory

    async def create(self, uuid: str, start_on_completion: bool, meta: Metadata) -> ServerView:
        """Register the server the Panel defines as `uuid` (PanelError: the Panel could not be
        asked; PanelRefused: what it answered cannot be taken; ServerExists), then install it in
        the background."""
        meta = meta.model_copy(update={"cause": CAUSE_PANEL_CREATE})
        try:
            cfg = await self.fetch(uuid, "create", meta)
        except PanelRefused as exc:
            await self._report(uuid, False, str(exc), registered=False)
            raise
        view = await self.registry.register_config(cfg, meta)
        if self._inventory is not None:
            self._inventory.listed_again(cfg.uuid)
        self._background(self._install(cfg.uuid, start_on_completion, meta), name=f"install-{cfg.uuid}")
        return view

    async def sync(self, uuid: str, meta: Metadata) -> list[str]:
        """Record the Panel's current definition of a server of this node; the keys that changed."""
        self.registry.get(uuid)
        meta = meta.model_copy(update={"cause": CAUSE_PANEL_SYNC})
        cfg = await self.fetch(uuid, "sync", meta)
        if self._inventory is not None:
            self._inventory.listed_again(cfg.uuid)
        return await self.registry.update_to(cfg, meta)

    async def fetch(self, uuid: str, source: str, meta: Metadata) -> ServerConfig:
        uuid = server_uuid(uuid)  # the caller checked it; normalised as the registry spells it
        doc = await self.client.get_json(f"/api/remote/servers/{uuid}")
        try:
            return self.registry.admit(parse_definition(definition_from(doc, uuid)))  # its IPs: this host's
        except (BadPanelDocument, InvalidDefinition) as exc:
            reason = f"the Panel's definition of server {uuid} cannot be taken: {exc}"
            log.error("a server the Panel sent was refused; nothing of it changed", server=uuid, reason=reason,
                      source=source)
            await self._record(NODE_STREAM, PanelServerRefused(uuid=uuid, reason=reason, source=source), meta=meta)
            raise PanelRefused(reason) from None

    async def _install(self, uuid: str, start_on_completion: bool, meta: Metadata) -> None:
        try:
            user = self._users.for_server(uuid)
            await asyncio.to_thread(check_permissions, self._folder(uuid), user)
            successful, reason = True, None
        except (PrebootFailure, EnvironmentError_, OSError) as exc:
            successful, reason = False, f"the server's folder could not be prepared: {exc}"
        await self._report(uuid, successful, reason, registered=True, meta=meta)
        if successful and start_on_completion:
            await self._request_power(uuid, "start", None, meta)

    async def _report(self, uuid: str, successful: bool, reason: str | None, registered: bool,
                      meta: Metadata | None = None) -> None:
        """Tell the Panel how the installation went; recorded on the server's stream when it has one."""
        report_error = None
        try:
            await self.client.post_json(f"/api/remote/servers/{uuid}/install",
                                        {"successful": successful, "reinstall": False})
        except PanelError as exc:
            report_error = exc.reason
            log.warning("the Panel did not take the installation report", server=uuid, reason=exc.reason)
        log.info("installation reported to the Panel", server=uuid, successful=successful, reason=reason,
                 reported=report_error is None)
        if registered and meta is not None:
            await self._record(uuid, InstallReported(successful=successful, reason=reason,
                                                     reported=report_error is None, report_error=report_error),
                               meta=meta)
