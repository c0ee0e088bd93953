"""What an install (engine.install) needs from a runtime, beside the runtime protocol (base.py):
run the egg's script in an installer, find one again at boot, and hand back its exit, its output
and its removal. Docker's is engine.environments.docker.installer; a `process` server has none
(no script can run for it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from wingman.engine.environments.base import ExitInfo
from wingman.engine.servers.definition import ServerConfig

LineSink = Callable[[str], None]  # each line the script prints, as it prints it

SCRIPT_MOUNT = "/mnt/install"  # where the script's folder is mounted, as in Wings
SCRIPT_PATH = f"{SCRIPT_MOUNT}/install.sh"
SERVER_MOUNT = "/mnt/server"  # where the server's folder is mounted while its script runs


@dataclass(frozen=True)
class InstallJob:
    config: ServerConfig  # the server's definition: its limits bound the installer (Wings' rule)
    image: str  # the egg's install image
    entrypoint: str  # the program that runs the script (`bash`, `ash`...)
    script_folder: Path  # on the host: holds install.sh, mounted at SCRIPT_MOUNT
    server_folder: Path  # on the host: mounted at SERVER_MOUNT
    environment: dict[str, str]  # the server's variables (engine.servers.environment)


class RunningInstall(Protocol):
    """An installer that runs, or ran: its container, found again after a daemon restart too."""

    container_id: str
    image: str | None
    entrypoint: str | None
    running: bool  # when it was started or found

    async def wait(self) -> ExitInfo:
        """Resolve once the installer has exited."""

    async def save_output(self, out: BinaryIO, limit: int) -> str | None:
        """Write everything it printed (as its runtime kept it) to `out`, at most `limit` bytes;
        what is missing, in words (more than `limit`, or nothing kept), or None."""

    async def tail(self, lines: int) -> list[str] | None:
        """Its last lines as its runtime kept them; None when it kept none."""

    async def remove(self) -> None:
        """Kill it if it runs, and remove it. Nothing left is no error."""


class InstallRunner(Protocol):
    async def run(self, job: InstallJob, on_line: LineSink) -> RunningInstall:
        """Fetch the image if it must, remove a leftover installer of the server, start a new one
        (RuntimeFailure saying why when it cannot)."""

    async def find(self, uuid: str, on_line: LineSink) -> RunningInstall | None:
        """The server's installer, left by a daemon that stopped, running or exited; None when gone."""


class OnDemandRunner:
    """A runner made on first use: Docker's loads the docker SDK, which a node whose servers are all
    local processes never needs (engine.environments.docker.on_demand says why that matters)."""

    def __init__(self, make: Callable[[], Awaitable[InstallRunner]]):
        self._make = make
        self._runner: InstallRunner | None = None

    async def _get(self) -> InstallRunner:
        if self._runner is None:
            self._runner = await self._make()
        return self._runner

    async def run(self, job: InstallJob, on_line: LineSink) -> RunningInstall:
        return await (await self._get()).run(job, on_line)

    async def find(self, uuid: str, on_line: LineSink) -> RunningInstall | None:
        return await (await self._get()).find(uuid, on_line)
