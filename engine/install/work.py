"""What one install does, as Wings' `InstallationProcess` does it, and the outcome it reached.

For a Docker server: sync the definition (a reinstall), fetch the egg's script from the Panel,
prepare the server's folder, write the script to its folder on the host, run the installer (the
runtime pulls the image and removes a leftover installer first), say its lines as it prints them,
wait for its exit, write the install log into the server's folder, remove the installer and the
script, and give what the script wrote (as root, in the installer) to the server's own user.
An adopted install (boot recovery) takes it up at the wait.

For a `process` server no script can run (an egg's script expects a container with the server's
folder at /mnt/server, and root in it): the folder is prepared, and the outcome says no script ran.

Every path ends in an outcome, never an exception, but a cancellation: the service decides what a
cancelled install leaves (engine.install.service).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeAlias, TypedDict

import structlog

from wingman.engine.environments.base import RuntimeFailure, ServerUser
from wingman.engine.environments.install_runner import InstallJob, InstallRunner, RunningInstall
from wingman.engine.environments.server_users import ServerUsers, take_over
from wingman.engine.events import Metadata
from wingman.engine.install import feed as said
from wingman.engine.install.feed import InstallFeed
from wingman.engine.install.log_file import LOG_NAME, MAX_OUTPUT_BYTES, header, last_lines, open_log
from wingman.engine.install.script import (
    InstallScript,
    InstallSourceError,
    parse_script,
    remove_script_folder,
    write_script_folder,
)
from wingman.engine.install_events import LAST_LINES, InstallFailed, InstallInterrupted, InstallSucceeded
from wingman.engine.power.outcomes import describe_exit
from wingman.engine.preboot.checks import PrebootFailure, check_permissions
from wingman.engine.servers.definition import ServerConfig
from wingman.engine.servers.environment import server_environment

log = structlog.get_logger("wingman.install")

Ended: TypeAlias = InstallSucceeded | InstallFailed  # how an install's work ends
InstallOutcome: TypeAlias = InstallSucceeded | InstallFailed | InstallInterrupted  # and boot recovery's too

NO_SCRIPT = (
    "no install script runs for a server whose runtime is `process`: an egg's script expects a "
    "container with the server's folder at /mnt/server; the folder was prepared"
)


class InstallSource(Protocol):
    """Where an install's script and definition come from: the Panel (engine.remote.installs)."""

    async def fetch_script(self, uuid: str) -> object:
        """The Panel's install document (`{container_image, entrypoint, script}`); InstallSourceError."""

    async def sync(self, uuid: str, meta: Metadata) -> None:
        """Record the Panel's current definition of the server; InstallSourceError."""

    async def report(self, uuid: str, successful: bool, reinstall: bool) -> str | None:
        """Tell the Panel how the install went; why it did not take the report, or None."""


@dataclass(frozen=True)
class Surroundings:
    """What every install of the node shares."""

    feed: InstallFeed
    users: ServerUsers
    tmp_directory: Path  # system.tmp_directory: the scripts' folders
    timezone: str  # system.timezone, the servers' TZ


class _Ran(TypedDict):
    """What either outcome of a script that ran says of it."""

    install_id: str
    image: str | None
    entrypoint: str | None
    exit_code: int | None
    last_lines: list[str]
    log_file: str | None


class InstallWork:
    def __init__(
        self,
        uuid: str,
        install_id: str,
        config: ServerConfig,
        folder: Path,
        around: Surroundings,
        runner: InstallRunner | None,
        source: InstallSource | None,
    ):
        self.uuid = uuid
        self.install_id = install_id
        self.config = config
        self.folder = folder
        self.around = around
        self.runner = runner
        self.source = source
        self.running: RunningInstall | None = None
        self._starting: asyncio.Task[RunningInstall] | None = None  # the installer being started
        self._lines: deque[str] = deque(maxlen=LAST_LINES)  # what the script printed last, as it printed it
        self._script: InstallScript | None = None

    # -- the steps -------------------------------------------------------------------------------

    async def run(self, reinstall: bool, meta: Metadata, refresh_config: Callable[[], ServerConfig]) -> Ended:
        """The whole install; `refresh_config()` gives the definition once a reinstall synced it."""
        if self.runner is None:
            user, problem = await self._prepare_folder()
            return (
                self._failed(problem)
                if problem
                else InstallSucceeded(install_id=self.install_id, script_ran=False, detail=NO_SCRIPT)
            )
        if self.source is None:
            return self._failed("this node has no Panel to take the egg's install script from")
        try:
            if reinstall:
                await self.source.sync(self.uuid, meta)
                self.config = refresh_config()
            self._script = parse_script(await self.source.fetch_script(self.uuid))
        except InstallSourceError as exc:
            return self._failed(str(exc))
        user, problem = await self._prepare_folder()
        if problem:
            return self._failed(problem)
        root = self.around.tmp_directory
        try:
            script_folder = await asyncio.to_thread(write_script_folder, root, self.uuid, self._script.script)
        except OSError as exc:
            return self._failed(f"the install script could not be written to {root}: {exc.strerror or exc}")
        job = InstallJob(
            config=self.config,
            image=self._script.image,
            entrypoint=self._script.entrypoint,
            script_folder=script_folder,
            server_folder=self.folder,
            environment=self._environment(),
        )
        self._starting = asyncio.ensure_future(self.runner.run(job, self.say_line))
        try:
            self.running = running = await asyncio.shield(self._starting)
        except RuntimeFailure as exc:
            await asyncio.to_thread(remove_script_folder, root, self.uuid)
            return self._failed(f"the installer could not be run: {exc}")
        return await self.finish(running, user)

    async def finish(self, running: RunningInstall, user: ServerUser | None = None) -> Ended:
        """From a running (or exited) installer to the outcome: wait, log, remove, give the files back."""
        self.running = running
        if running.running:
            self.around.feed.tell(self.uuid, said.MESSAGE, said.STARTING_MESSAGE)
        info = await running.wait()
        self.around.feed.tell(self.uuid, said.MESSAGE, said.COMPLETED_MESSAGE)
        if user is None:
            user, _ = await self._user()
        log_file = await self._write_log(running, user)
        tail = await running.tail(LAST_LINES)
        lines = last_lines(tail if tail is not None else list(self._lines))
        await self.discard()
        if user is not None:
            try:
                await asyncio.to_thread(take_over, self.folder, user)
            except OSError as exc:  # the next start's pre-boot tries again, and fails clearly if it must
                log.warning(
                    "the files the install wrote could not all be given to the server's user",
                    server=self.uuid,
                    problem=str(exc),
                )
        common = _Ran(
            install_id=self.install_id,
            image=running.image,
            entrypoint=running.entrypoint,
            exit_code=info.exit_code,
            last_lines=lines,
            log_file=log_file,
        )
        if info.exit_code == 0 and not info.signal and not info.oom_killed and not info.reason:
            return InstallSucceeded(**common)
        return InstallFailed(
            reason=f"the install script failed ({describe_exit(info)})", oom_killed=info.oom_killed, **common
        )

    async def discard(self) -> None:
        """Remove the installer (killed if it runs) and the script's folder: after the install, or
        when it is cancelled (the server deleted). An installer still being started is waited for."""
        if self.running is None and self._starting is not None:
            try:
                self.running = await self._starting
            except Exception:  # noqa: BLE001 - it did not start: nothing of it to remove
                pass
        if self.running is not None:
            try:
                await self.running.remove()
            except RuntimeFailure as exc:
                log.warning("the installer could not be removed", server=self.uuid, problem=str(exc))
        try:
            await asyncio.to_thread(remove_script_folder, self.around.tmp_directory, self.uuid)
        except OSError as exc:
            log.warning("the install script's folder could not be removed", server=self.uuid, problem=str(exc))

    # -- helpers ---------------------------------------------------------------------------------

    def say_line(self, line: str) -> None:
        """A line the script printed: kept for the outcome, and said to the server's websockets."""
        self._lines.append(line)
        self.around.feed.tell(self.uuid, said.OUTPUT, line)

    def _environment(self) -> dict[str, str]:
        return server_environment(self.config, self.around.timezone)

    async def _user(self) -> tuple[ServerUser | None, str | None]:
        try:
            return self.around.users.for_server(self.uuid), None
        except RuntimeFailure as exc:
            return None, str(exc)

    async def _prepare_folder(self) -> tuple[ServerUser | None, str | None]:
        """The folder exists, belongs to the server's user and is writable (pre-boot's check)."""
        user, problem = await self._user()
        if problem:
            return None, f"the server's folder could not be prepared: {problem}"
        try:
            await asyncio.to_thread(check_permissions, self.folder, user)
        except (PrebootFailure, OSError) as exc:
            return user, f"the server's folder could not be prepared: {getattr(exc, 'reason', None) or exc}"
        return user, None

    async def _write_log(self, running: RunningInstall, user: ServerUser | None) -> str | None:
        """The install log in the server's folder (engine.install.log_file); its path, or None."""
        image, entrypoint = running.image, running.entrypoint
        try:
            out = await asyncio.to_thread(open_log, self.folder, user)
        except OSError as exc:
            log.warning("the install log could not be written", server=self.uuid, problem=str(exc))
            return None
        try:
            await asyncio.to_thread(out.write, header(self.uuid, image, entrypoint, self._environment()))
            missing = await running.save_output(out, MAX_OUTPUT_BYTES)
            if missing:
                await asyncio.to_thread(out.write, f"\n[{missing}]\n".encode())
        except OSError as exc:
            log.warning("the install log could not be written whole", server=self.uuid, problem=str(exc))
        finally:
            await asyncio.to_thread(out.close)
        return str(self.folder / LOG_NAME)

    def _failed(self, reason: str) -> InstallFailed:
        script = self._script
        return InstallFailed(
            install_id=self.install_id,
            reason=reason,
            image=script.image if script else None,
            entrypoint=script.entrypoint if script else None,
            last_lines=last_lines(list(self._lines)),
        )
