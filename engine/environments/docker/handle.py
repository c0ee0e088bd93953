"""One server's container as seen by the Docker runtime: console pump, stdin, signals, exit.

The console comes from a hijacked `attach` connection that the event loop reads itself
(`loop.sock_recv` on a non-blocking socket): no thread per container. Exits are reported by the
runtime's single events watcher (`die`, `oom`, `destroy`) and, independently, by the attach
stream ending; both paths end in `check`, which asks the engine for the container's state and
resolves `wait()`. The handle talks to the engine only through `ContainerEngine`, which the
runtime implements. See runtime.py for the whole picture.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Protocol

import structlog

from wingman.engine.console.lines import OutputThrottle
from wingman.engine.environments.base import ConsoleSink, ExitInfo, ProcessHandle, RuntimeFailure, RuntimeUnavailable
from wingman.engine.environments.docker.attach import ConsoleDemux
from wingman.engine.environments.docker.sdk import ContainerInspect, ContainerStatus
from wingman.engine.signals import parse_signal

log = structlog.get_logger("wingman.docker")

REMOVED = ExitInfo(None, reason="container removed")
DRAIN_TIMEOUT = 2.0  # after an exit, how long to wait for the last console bytes


class ContainerEngine(Protocol):
    """What a handle needs from the runtime that owns it."""

    closing: bool

    async def signal(self, container_id: str, signame: str) -> None: ...

    async def container_state(self, container_id: str) -> ContainerStatus | None: ...

    async def reattach(self, handle: DockerHandle) -> None: ...

    def forget(self, handle: DockerHandle) -> None: ...


class DockerHandle(ProcessHandle):
    runtime = "docker"
    container_id: str  # always: a handle is one container's

    def __init__(self, rt: ContainerEngine, state: ContainerInspect, console: ConsoleSink, adopted: bool):
        self._rt = rt
        self.container_id = state["Id"]
        self.name = state["Name"].lstrip("/")
        self.pid = state["State"].get("Pid") or None
        self.adopted = adopted
        # What Docker's own stop would send first: the image's STOPSIGNAL, else SIGTERM.
        self._stop_signal = (state.get("Config") or {}).get("StopSignal") or "SIGTERM"
        self._console = console
        self._demux = ConsoleDemux(console)
        self._done: asyncio.Future[ExitInfo] = asyncio.get_running_loop().create_future()
        self._sock: socket.socket | None = None
        self._pump: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._oom_seen = False
        self._removed = False
        self._die_code: int | None = None
        self._checking = False
        self._recheck = False

    # -- console ---------------------------------------------------------------------------
    def start_console(self, sock: socket.socket, leftover: bytes) -> None:
        self._sock = sock
        self._demux = ConsoleDemux(self._console)  # a new stream starts on a frame boundary
        self._pump = asyncio.get_running_loop().create_task(self._read_console(sock, leftover))

    @property
    def console_attached(self) -> bool:
        return self._pump is not None and not self._pump.done()

    async def _read_console(self, sock: socket.socket, leftover: bytes) -> None:
        loop = asyncio.get_running_loop()
        throttle = OutputThrottle()
        try:
            if leftover:
                self._demux.feed(leftover)
            while True:
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    break
                self._demux.feed(data)
                pause = throttle.delay_after(len(data))
                if pause:
                    await asyncio.sleep(pause)  # a flooding container waits on its own output
        except OSError as exc:
            log.info("console stream broke", container=self.name, error=str(exc))
        finally:
            self._demux.flush()
            self._close_socket(sock)
            # The attach stream ends when the container exits (or the engine goes away): ask
            # the engine which, independently of the events watcher.
            if not self._done.done() and not self._rt.closing:
                self.schedule_check()

    def _close_socket(self, sock: socket.socket) -> None:
        if self._sock is sock:
            self._sock = None
        try:
            sock.close()
        except OSError:
            pass

    def detach(self) -> None:
        """Stop reading the console (daemon shutdown); the container keeps running."""
        if self._pump is not None:
            self._pump.cancel()
        for task in self._tasks:
            task.cancel()

    # -- control ---------------------------------------------------------------------------
    async def send_command(self, text: str) -> None:
        sock = self._sock
        if sock is None or self._done.done():
            raise RuntimeFailure(f"the console of {self.name} is not attached; the command was not sent")
        try:
            await asyncio.get_running_loop().sock_sendall(sock, text.encode() + b"\n")
        except OSError as exc:
            raise RuntimeFailure(f"writing to the console of {self.name} failed: {exc}") from None

    async def send_signal(self, signame: str) -> None:
        sig = parse_signal(signame)
        await self._rt.signal(self.container_id, sig.name)

    async def kill(self) -> None:
        await self._rt.signal(self.container_id, "SIGKILL")

    async def native_stop(self) -> None:
        """Docker's `stop`, first half: the image's stop signal. Not the blocking SDK call, which
        holds a worker thread for the whole timeout (10 minutes by default), so a few servers
        stopping at once would starve every other Docker call. The second half, SIGKILL after the
        stop timeout, is the power engine's, which records `power.stop_timed_out` when it comes."""
        await self._rt.signal(self.container_id, self._stop_signal)

    async def wait(self) -> ExitInfo:
        return await asyncio.shield(self._done)

    @property
    def alive(self) -> bool:
        return not self._done.done()

    # -- exit ------------------------------------------------------------------------------
    def on_event(self, action: str, attrs: Mapping[str, str]) -> None:
        """Called on the loop by the runtime's events watcher."""
        if action == "oom":
            self._oom_seen = True
        elif action == "die":
            code = attrs.get("exitCode")
            self._die_code = int(code) if code else None  # None and "": no code given
            self.schedule_check()
        elif action == "destroy":
            self._removed = True
            self.schedule_check()

    async def check(self) -> None:
        """Resolve wait() if the container is gone; re-attach the console if it still runs but
        its stream was lost (the engine came back). Safe to call any time, from any trigger: one
        check runs at a time, and a request arriving meanwhile makes it run once more (a `die`
        event must not be lost to a check that had just read "running")."""
        if self._checking:
            self._recheck = True
            return
        self._checking = True
        try:
            while not self._done.done():
                self._recheck = False
                await self._check_once()
                if not self._recheck:
                    break
        finally:
            self._checking = False

    async def _check_once(self) -> None:
        try:
            info = await self._exit_info()
            if info is None:
                if not self.console_attached and not self._removed:
                    await self._rt.reattach(self)
                return
            if self._pump is not None and not self._pump.done():
                # Let the last console bytes through before saying the server is gone.
                await asyncio.wait({self._pump}, timeout=DRAIN_TIMEOUT)
            if self._removed:  # a destroy seen meanwhile wins over a state read before it
                info = REMOVED
            if not self._done.done():
                self._done.set_result(info)
                self._finish()
        except RuntimeUnavailable as exc:
            log.info("container state unknown until the engine answers", container=self.name, error=str(exc))
        except Exception:
            log.exception("checking the container failed", container=self.name)

    async def _exit_info(self) -> ExitInfo | None:
        """How the container ended, or None while it is still running (or the engine is away
        and no `die` event said how it ended)."""
        if self._removed:
            return REMOVED
        try:
            state = await self._rt.container_state(self.container_id)
        except RuntimeUnavailable:
            if self._die_code is None:
                raise
            return ExitInfo(self._die_code, oom_killed=self._oom_seen)
        if state is None or state.get("Status") in ("removing", "dead"):
            return REMOVED
        if state.get("Running"):
            return None
        return ExitInfo(state.get("ExitCode"), oom_killed=bool(state.get("OOMKilled")) or self._oom_seen)

    def _finish(self) -> None:
        if self._pump is not None and self._pump is not asyncio.current_task():
            self._pump.cancel()
        if self._sock is not None:
            self._close_socket(self._sock)
        self._rt.forget(self)

    def schedule_check(self) -> None:
        """Run `check` in the background (from the watcher, the console's end, a reconnect)."""
        task = asyncio.get_running_loop().create_task(self.check())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
