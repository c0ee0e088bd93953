"""The node's side of its Panel, built from the config: one client, the boot inventory
(engine.remote.inventory), Wings' create and sync, and what installs ask of the Panel
(engine.remote.installs). None for a standalone node (no `remote`)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from wingman.engine.config import DaemonConfig
from wingman.engine.install.service import InstallService
from wingman.engine.power.journal import Journal
from wingman.engine.power.processes import ProcessTracker
from wingman.engine.remote.client import PanelClient
from wingman.engine.remote.installs import PanelInstallSource, PanelServers
from wingman.engine.remote.inventory import Inventory
from wingman.engine.servers.registry import ServerRegistry


class Background(Protocol):
    """Runs a coroutine as a task the daemon owns (PowerService.background)."""

    def __call__(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]: ...


@dataclass
class PanelSide:
    client: PanelClient
    inventory: Inventory
    servers: PanelServers

    def start(self, background: Background) -> None:
        background(self.inventory.run(), name="panel-inventory")

    async def aclose(self) -> None:
        await self.client.aclose()


def panel_side(
    config: DaemonConfig,
    registry: ServerRegistry,
    journal: Journal,
    processes: ProcessTracker,
    installs: InstallService,
    recovered: asyncio.Event,
) -> PanelSide | None:
    """The Panel's side, or None; the installs take their scripts and report to it from now on."""
    if not config.remote:
        return None
    q = config.remote_query
    client = PanelClient(config.remote, config.token_id, config.token, timeout=q.timeout)
    inventory = Inventory(
        client,
        registry,
        journal.record,
        has_process=lambda uuid: processes.handle(uuid) is not None,
        per_page=q.boot_servers_per_page,
        max_servers=config.system.server_users.count,
        retry_max=q.retry_max_seconds,
        may_record=recovered,
        remote_runtime=config.remote_runtime,
    )
    servers = PanelServers(client, registry, journal.record, installs, config.remote_runtime, inventory)
    installs.source = PanelInstallSource(servers)
    return PanelSide(client, inventory, servers)
