"""Wings' create and sync, for a node with a Panel (`router/router_system.go` postCreateServer,
`router/router_server.go` postServerSync in pterodactyl/wings), and the Panel's side of installs:

- create (`POST /api/servers` with `{"uuid": ..., "start_on_completion": bool}`): the server's
  definition is fetched from the Panel (`GET /api/remote/servers/{uuid}`) and registered; then
  it is installed in the background (engine.install: the egg's script, then the report, then the
  start when `start_on_completion` is set and the install succeeded);
- sync (`POST /api/servers/{uuid}/sync`): the definition is fetched now and recorded when it changed;
- `PanelInstallSource`: what an install asks of the Panel (engine.install.work.InstallSource): the
  egg's script (`GET /api/remote/servers/{uuid}/install`), the definition again (a reinstall
  syncs first), and the report (`POST /api/remote/servers/{uuid}/install`,
  `{"successful", "reinstall"}`).

A definition the Panel serves that names no `runtime` gets the node's `remote_runtime` (docker by
default, as Wings runs every server). A definition the node cannot take is `panel.server_refused`,
and the Panel is told its installation failed.
"""

from __future__ import annotations

import structlog

from wingman.engine.event_types import Cause
from wingman.engine.events import Metadata
from wingman.engine.install.script import InstallSourceError
from wingman.engine.install.service import InstallService
from wingman.engine.panel_events import PanelServerRefused, node_stream
from wingman.engine.remote.client import PanelClient, PanelError
from wingman.engine.remote.documents import (
    BadPanelDocument,
    definition_from,
    server_uuid,
    with_runtime,
)
from wingman.engine.remote.inventory import Inventory, Recorder
from wingman.engine.servers.definition import InvalidDefinition, ServerConfig, parse_definition
from wingman.engine.servers.fold import ServerView
from wingman.engine.servers.registry import ServerRegistry

log = structlog.get_logger("wingman.panel")


class PanelRefused(Exception):
    """The Panel's definition of the server cannot be taken (recorded as panel.server_refused)."""


def install_path(uuid: str) -> str:
    return f"/api/remote/servers/{uuid}/install"


class PanelServers:
    def __init__(
        self,
        client: PanelClient,
        registry: ServerRegistry,
        record: Recorder,
        installs: InstallService,
        remote_runtime: str,
        inventory: Inventory | None = None,
    ):
        self.client = client
        self.registry = registry
        self._record = record
        self._installs = installs
        self.remote_runtime = remote_runtime
        self._inventory = inventory

    async def create(self, uuid: str, start_on_completion: bool, meta: Metadata) -> ServerView:
        """Register the server the Panel defines as `uuid` (PanelError: the Panel could not be
        asked; PanelRefused: what it answered cannot be taken; ServerExists), then install it in
        the background."""
        meta = meta.model_copy(update={"cause": Cause.PANEL_CREATE})
        try:
            cfg = await self.fetch(uuid, "create", meta)
        except PanelRefused:
            await report(self.client, server_uuid(uuid), False, False)  # no stream to record it on
            raise
        view = await self.registry.register_config(cfg, meta)
        if self._inventory is not None:
            self._inventory.listed_again(cfg.uuid)
        self._installs.install(cfg.uuid, start_on_completion, meta)
        return view

    async def sync(self, uuid: str, meta: Metadata) -> list[str]:
        """Record the Panel's current definition of a server of this node; the keys that changed."""
        self.registry.get(uuid)
        meta = meta.model_copy(update={"cause": Cause.PANEL_SYNC})
        cfg = await self.fetch(uuid, "sync", meta)
        if self._inventory is not None:
            self._inventory.listed_again(cfg.uuid)
        return await self.registry.update_to(cfg, meta)

    async def fetch(self, uuid: str, source: str, meta: Metadata) -> ServerConfig:
        uuid = server_uuid(uuid)  # the caller checked it; normalised as the registry spells it
        doc = await self.client.get_json(f"/api/remote/servers/{uuid}")
        try:
            definition = with_runtime(definition_from(doc, uuid), self.remote_runtime)
            return self.registry.admit(parse_definition(definition))  # its IPs: this host's
        except (BadPanelDocument, InvalidDefinition) as exc:
            reason = f"the Panel's definition of server {uuid} cannot be taken: {exc}"
            log.error(
                "a server the Panel sent was refused; nothing of it changed", server=uuid, reason=reason, source=source
            )
            await self._record(
                node_stream(self.registry.store.node_id),
                PanelServerRefused(uuid=uuid, reason=reason, source=source),
                meta=meta,
            )
            raise PanelRefused(reason) from None


class PanelInstallSource:
    """What an install asks of the Panel (engine.install.work.InstallSource)."""

    def __init__(self, servers: PanelServers):
        self.servers = servers

    async def fetch_script(self, uuid: str) -> object:
        try:
            return await self.servers.client.get_json(install_path(uuid))
        except PanelError as exc:
            raise InstallSourceError(f"the Panel's install script could not be fetched: {exc}") from None

    async def sync(self, uuid: str, meta: Metadata) -> None:
        try:
            await self.servers.sync(uuid, meta)
        except (PanelError, PanelRefused) as exc:
            raise InstallSourceError(f"the server's definition could not be synced from the Panel: {exc}") from None

    async def report(self, uuid: str, successful: bool, reinstall: bool) -> str | None:
        return await report(self.servers.client, uuid, successful, reinstall)


async def report(client: PanelClient, uuid: str, successful: bool, reinstall: bool) -> str | None:
    """Tell the Panel how an install went; why it did not take the report, or None."""
    try:
        await client.post_json(install_path(uuid), {"successful": successful, "reinstall": reinstall})
    except PanelError as exc:
        log.warning("the Panel did not take the installation report", server=uuid, reason=exc.reason)
        return exc.reason
    log.info("installation reported to the Panel", server=uuid, successful=successful, reinstall=reinstall)
    return None
