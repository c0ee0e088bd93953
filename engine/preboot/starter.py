"""Pre-boot and launch for one start: sync the definition, run the checks, pick the runtime.

Kept apart from engine.power so that the power engine deals only in locks, states and outcomes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from wingman.engine.environments.base import ConsoleSink, ProcessHandle, Runtime, RuntimeFailure
from wingman.engine.environments.server_users import ServerUsers
from wingman.engine.event_types import Cause
from wingman.engine.events import Event, Metadata, PrebootCheckFailed
from wingman.engine.preboot.checks import PrebootFailure, PrebootResult, run_preboot
from wingman.engine.preboot.sources import DefinitionSource, SyncFailed
from wingman.engine.servers.definition import InvalidDefinition, ServerConfig
from wingman.engine.servers.registry import ServerRegistry

log = structlog.get_logger("wingman.preboot")

# Records an event in the server's stream: (server, event, metadata).
Recorder = Callable[[str, Event, Metadata], Awaitable[None]]
# Tells the server's console listeners what the daemon does: (server, text).
Notifier = Callable[[str, str], None]


class Starter:
    def __init__(
        self,
        registry: ServerRegistry,
        runtimes: dict[str, Runtime],
        source: DefinitionSource,
        data_directory: Path,
        users: ServerUsers,
        daemon_config: dict[str, Any],
        record: Recorder,
        note: Notifier = lambda uuid, text: None,
    ):
        self.registry = registry
        self.runtimes = runtimes
        self.source = source
        self.data_directory = data_directory
        self.users = users
        self.daemon_config = daemon_config
        self._record = record
        self._note = note

    def folder(self, uuid: str) -> Path:
        return self.data_directory / uuid

    def runtime(self, config: ServerConfig) -> Runtime:
        try:
            return self.runtimes[config.runtime]
        except KeyError:
            raise PrebootFailure("environment", f"runtime {config.runtime!r} is not available on this node") from None

    async def sync(self, uuid: str, meta: Metadata) -> ServerConfig:
        """Step 1: the definition to boot with, recorded as a change when it differs."""
        try:
            definition = await self.source.fetch(uuid)
        except SyncFailed as exc:
            raise PrebootFailure("sync", str(exc)) from None
        if definition is not None:
            try:
                await self.registry.update(uuid, definition, meta.model_copy(update={"cause": Cause.SYNC}))
            except InvalidDefinition as exc:
                raise PrebootFailure("sync", f"the server definition is not valid: {exc}") from None
        return self.registry.config(uuid)

    async def prepare(self, uuid: str, op_id: str, meta: Metadata) -> PrebootResult:
        async def soft_failure(check: str, reason: str) -> None:
            await self._record(
                uuid, PrebootCheckFailed(check=check, reason=reason, fatal=False, operation_id=op_id), meta
            )

        config = await self.sync(uuid, meta)
        prepared = await run_preboot(
            config=config,
            runtime=self.runtime(config),
            folder=self.folder(uuid),
            users=self.users,
            daemon_config=self.daemon_config,
            on_soft_failure=soft_failure,
            note=lambda text: self._note(uuid, text),
        )
        for warning in prepared.warnings:
            log.warning("pre-boot warning", server=uuid, warning=warning)
        return prepared

    async def launch(self, prepared: PrebootResult, console: ConsoleSink) -> ProcessHandle:
        runtime = self.runtime(prepared.spec.config)
        try:
            return await runtime.launch(prepared.spec, console)
        except RuntimeFailure:
            raise
        except OSError as exc:
            raise RuntimeFailure(str(exc)) from None
