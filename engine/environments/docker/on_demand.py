"""The Docker runtime as the daemon holds it: connected to the engine when a server first needs it.

The docker SDK and what it pulls in (requests, urllib3, ...) are about 8 MiB of the daemon's
memory for good once imported, and a node whose servers are all local processes never uses them.
So the daemon holds this stand-in: the real runtime (engine.environments.docker.runtime) is
imported, built and opened (ping, events watcher) on the first call that needs the engine (a
start's checks, a launch, boot recovery adopting or reaping a container, a delete), and every
call after that goes straight to it. A node with Docker servers up at boot connects during boot
recovery, as before; one without any never loads the SDK.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wingman.engine.config_docker import DockerConfig
from wingman.engine.environments.base import (
    ConsoleSink,
    ExitInfo,
    LaunchSpec,
    ProcessHandle,
    Runtime,
    RuntimeUnavailable,
    StartedData,
)
from wingman.engine.servers.definition import ServerConfig

if TYPE_CHECKING:
    from wingman.engine.environments.docker.runtime import DockerRuntime


class OnDemandDockerRuntime(Runtime):
    kind = "docker"
    detachable = True  # containers outlive the daemon and are adopted at the next boot

    def __init__(self, base_url: str | None = None, docker_config: DockerConfig | None = None, max_workers: int = 8):
        self.base_url = base_url  # may be changed until the runtime is first used
        self.docker_config = docker_config
        self.max_workers = max_workers
        self.runtime: DockerRuntime | None = None  # the real one, once something needed it
        self._connecting = asyncio.Lock()
        self._closed = False

    async def connected(self) -> DockerRuntime:
        """The real runtime, built and opened on first use (once, however many callers ask)."""
        if self.runtime is None:
            async with self._connecting:
                if self._closed:  # shutting down: a late caller must not leave a connection behind
                    raise RuntimeUnavailable("the daemon is shutting down")
                if self.runtime is None:
                    from wingman.engine.environments.docker.runtime import DockerRuntime

                    runtime = DockerRuntime(
                        base_url=self.base_url, docker_config=self.docker_config, max_workers=self.max_workers
                    )
                    await runtime.open()
                    self.runtime = runtime
        return self.runtime

    async def open(self) -> None:
        """Nothing to connect yet: see the module's docstring."""

    async def close(self) -> None:
        self._closed = True
        if self.runtime is not None:
            await self.runtime.close()

    async def settle(self) -> None:
        if self.runtime is not None:
            await self.runtime.settle()

    async def clear_for_launch(self, config: ServerConfig) -> None:
        await (await self.connected()).clear_for_launch(config)

    async def prepare(self, spec: LaunchSpec, note: ConsoleSink) -> None:
        await (await self.connected()).prepare(spec, note)

    async def check_limits(self, spec: LaunchSpec) -> list[str]:
        return await (await self.connected()).check_limits(spec)

    async def launch(self, spec: LaunchSpec, console: ConsoleSink) -> ProcessHandle:
        return await (await self.connected()).launch(spec, console)

    async def adopt(
        self, config: ServerConfig, folder: Path, console: ConsoleSink, last_started: StartedData | None = None
    ) -> ProcessHandle | None:
        return await (await self.connected()).adopt(config, folder, console, last_started)

    async def destroy(self, config: ServerConfig) -> list[str]:
        return await (await self.connected()).destroy(config)

    async def reap_orphan(self, config: ServerConfig, last_started: StartedData) -> ExitInfo | None:
        return await (await self.connected()).reap_orphan(config, last_started)

    def __getattr__(self, name: str) -> Any:
        # Anything else the real runtime has (container_states, unavailable, ...), once it exists.
        runtime = self.__dict__.get("runtime")
        if runtime is None:
            raise AttributeError(f"{name!r}: the Docker runtime has not connected yet (no server needed it)")
        return getattr(runtime, name)
