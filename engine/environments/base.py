"""The environment protocol: what the power engine needs from a place that runs a server.

A *runtime* (local processes, Docker) launches servers and hands back a *handle* per running
process or container. The engine never imports a runtime's SDK; it calls these methods only.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wingman.engine.servers.definition import ServerConfig

ConsoleSink = Callable[[str], None]  # called with each console line (no trailing newline)
# The data of a server's last `process.started` event (engine.events.ProcessStarted) as the log
# keeps it: JSON, read back by the runtime that started the process (pid, container_id, ...).
StartedData = Mapping[str, Any]


class RuntimeFailure(Exception):
    """A runtime could not do what was asked; the message is shown to operators as is."""


class RuntimeUnavailable(RuntimeFailure):
    """The runtime itself is unreachable (for example the Docker engine is down)."""


@dataclass(frozen=True)
class ExitInfo:
    exit_code: int | None
    signal: str | None = None
    oom_killed: bool = False
    reason: str | None = None  # set when the exit was observed indirectly (e.g. container removed)


@dataclass(frozen=True)
class ServerUser:
    """The unprivileged uid and gid one server runs as (engine.environments.server_users)."""

    uid: int
    gid: int

    @property
    def docker_user(self) -> str:
        return f"{self.uid}:{self.gid}"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a runtime needs to launch one server, resolved by the engine's pre-boot."""

    config: ServerConfig
    folder: Path  # the server's own folder under the data directory
    environment: dict[str, str]  # variables for the process, placeholders already resolved
    # Who the server runs as; None only on a daemon that is not root and opted in to running its
    # servers as itself (system.insecure_run_servers_as_daemon_user).
    user: ServerUser | None = None


class ProcessHandle(abc.ABC):
    """One running server process or container."""

    runtime: str
    pid: int | None = None
    container_id: str | None = None
    adopted: bool = False
    # Who the process is beyond its pid (local processes): when it started, in which boot. Recorded
    # so that a later daemon adopts this process and never one that reused the pid.
    start_ticks: int | None = None
    boot_id: str | None = None

    @abc.abstractmethod
    async def send_command(self, text: str) -> None:
        """Write a line to the process's stdin."""

    @abc.abstractmethod
    async def send_signal(self, signame: str) -> None:
        """Deliver a signal (a name such as SIGTERM) to the process (group)."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """SIGKILL, now."""

    async def native_stop(self) -> None:
        """The runtime's own stop signal (Docker: the image's STOPSIGNAL); by default SIGTERM.
        The caller waits for the exit and kills after the stop timeout."""
        await self.send_signal("SIGTERM")

    @abc.abstractmethod
    async def wait(self) -> ExitInfo:
        """Resolve when the process is gone, with how it ended. May be awaited more than once."""

    @property
    @abc.abstractmethod
    def alive(self) -> bool: ...


class Runtime(abc.ABC):
    """A kind of place where servers run: one instance per daemon serves every server of its kind."""

    kind: str
    # True when servers keep running, and can be adopted again, after the daemon exits.
    detachable: bool = False

    async def open(self) -> None:
        """Connect to whatever the runtime needs (called once at daemon start)."""

    async def close(self) -> None:
        """Release resources; running servers are left running where the runtime allows it."""

    async def clear_for_launch(self, config: ServerConfig) -> None:
        """At the start of pre-boot: begin removing, in the background, what the launch would
        otherwise remove first on its own path (Docker: the server's old, stopped container,
        kept until then for inspection, as Wings keeps it); the launch waits for it. Returns at
        once. Nothing to clear for a local process."""

    async def prepare(self, spec: LaunchSpec, note: Callable[[str], None]) -> None:
        """Pre-boot, before check_limits: fetch what the launch needs (Docker: pull the server's
        image, as Wings does at each start), telling the server's console through `note`.
        Raises RuntimeFailure when the server cannot run without it. Nothing for a local
        process."""

    @abc.abstractmethod
    async def check_limits(self, spec: LaunchSpec) -> list[str]:
        """Pre-boot step 3: validate what can be enforced. Returns warnings for limits that this
        runtime cannot apply; raises RuntimeFailure when the server cannot run here at all."""

    @abc.abstractmethod
    async def launch(self, spec: LaunchSpec, console: ConsoleSink) -> ProcessHandle:
        """Start the server; console lines go to `console` from the first byte on."""

    async def adopt(
        self, config: ServerConfig, folder: Path, console: ConsoleSink, last_started: StartedData | None = None
    ) -> ProcessHandle | None:
        """A handle on a server that is already running (after a daemon restart), or None.
        `last_started` is the data of its last `process.started` event."""
        return None

    async def destroy(self, config: ServerConfig) -> list[str]:
        """Remove what the runtime keeps for a server being deleted (Docker: its container, forced
        if it runs); returns what was removed, each in words (empty: nothing was left)."""
        return []

    async def reap_orphan(self, config: ServerConfig, last_started: StartedData) -> ExitInfo | None:
        """At boot, for a server the log says is up but that cannot be adopted: make sure nothing is
        left running, and say how it ended (None when it was already gone)."""
        return None
