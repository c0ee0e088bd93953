"""Pre-boot and launch for one start: sync the definition, run the checks, pick the runtime.

Kept apart from engine.power.service so that the power engine deals only in locks, states and outcomes.
"""
from __future__ import annotations

from pathlib import Path

import structlog

from engine.environments.base import ConsoleSink, EnvironmentError_, ProcessHandle, Runtime
from engine.events import Metadata, NewEvent, PrebootCheckFailed
from engine.preboot.checks import PrebootFailure, PrebootResult, run_preboot
from engine.servers.registry import ServerRegistry
from engine.servers.definition import InvalidDefinition, ServerConfig
from engine.store.event_store import EventStore
from engine.preboot.sources import DefinitionSource, SyncFailed

log = structlog.get_logger("wingman.preboot")


class Starter:
    def __init__(self, store: EventStore, registry: ServerRegistry, runtimes: dict[str, Runtime],
                 source: DefinitionSource, data_directory: Path, user: str | None, daemon_config: dict):
        self.store = store
        self.registry = registry
        self.runtimes = runtimes
        self.source = source
        self.data_directory = data_directory
        self.user = user
        self.daemon_config = daemon_config

    def folder(self, uuid: str) -> Path:
        return self.data_directory / uuid

    def runtime(self, config: ServerConfig) -> Runtime:
        try:
            return self.runtimes[config.runtime]
        except KeyError:
            raise PrebootFailure("environment", f"runtime {config.runtime!r} is not available on this node") from None

    async def prepare(self, uuid: str, op_id: str, meta: Metadata) -> PrebootResult:
        async def sync() -> ServerConfig:
            try:
                definition = await self.source.fetch(uuid)
            except SyncFailed as exc:
                raise PrebootFailure("sync", str(exc)) from None
            if definition is not None:
                try:
                    await self.registry.update(uuid, definition, meta.model_copy(update={"cause": "sync"}))
                except InvalidDefinition as exc:
                    raise PrebootFailure("sync", f"the server definition is not valid: {exc}") from None
            return self.registry.config(uuid)

        async def soft_failure(check: str, reason: str) -> None:
            failed = PrebootCheckFailed(check=check, reason=reason, fatal=False, operation_id=op_id)
            await self.store.append(uuid, [NewEvent.of(failed, meta)])

        config = await sync()
        prepared = await run_preboot(
            config_source=_const(config),
            runtime=self.runtime(config),
            folder=self.folder(uuid),
            user=self.user,
            daemon_config=self.daemon_config,
            on_soft_failure=soft_failure,
        )
        for warning in prepared.warnings:
            log.warning("pre-boot warning", server=uuid, warning=warning)
        return prepared

    async def launch(self, prepared: PrebootResult, console: ConsoleSink) -> ProcessHandle:
        runtime = self.runtime(prepared.spec.config)
        try:
            return await runtime.launch(prepared.spec, console)
        except EnvironmentError_:
            raise
        except OSError as exc:
            raise EnvironmentError_(str(exc)) from None


def _const(config: ServerConfig):
    async def source() -> ServerConfig:
        return config

    return source
