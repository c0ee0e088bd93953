"""The local process runtime (the default): a server is a child process of the daemon.

Each server runs through `/bin/sh -c <invocation>` in its own folder and its own process group
(so stop signals and kill reach everything it spawned), with its environment variables, stdin
kept open for console commands, and stdout+stderr read line by line into the console sink.

Limits: `build.memory_limit` becomes RLIMIT_AS (address space, which over-counts what a process
really uses) and `build.pids_limit` RLIMIT_NPROC (counted per user, not per server); CPU and IO
limits cannot be applied to a plain process and are reported as warnings by pre-boot.
A daemon restart cannot re-attach to a child's pipes: such orphans are killed at boot and their
exit is recorded (see `reap_orphan`).
"""
from __future__ import annotations

import asyncio
import os
import resource
import signal as signals
from pathlib import Path

from engine.environments.base import (
    ConsoleSink, EnvironmentError_, ExitInfo, LaunchSpec, ProcessHandle, Runtime, parse_signal,
)
from engine.servers.definition import ServerConfig

MAX_LINE = 64 * 1024


class LocalProcess(ProcessHandle):
    runtime = "process"

    def __init__(self, proc: asyncio.subprocess.Process, console: ConsoleSink):
        self._proc = proc
        self.pid = proc.pid
        self._console = console
        self._exit: asyncio.Future[ExitInfo] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._pump(), name=f"console-{proc.pid}")

    async def _pump(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        while True:
            try:
                raw = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                raw = exc.partial
                if raw:
                    self._emit(raw)
                break
            except asyncio.LimitOverrunError as exc:
                raw = await stream.readexactly(exc.consumed)
            self._emit(raw)
        code = await self._proc.wait()
        info = ExitInfo(exit_code=code) if code >= 0 else ExitInfo(exit_code=128 - code, signal=signals.Signals(-code).name)
        if not self._exit.done():
            self._exit.set_result(info)

    def _emit(self, raw: bytes) -> None:
        try:
            self._console(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        except Exception:  # a broken sink must not stop us from noticing the exit
            pass

    @property
    def alive(self) -> bool:
        return not self._exit.done()

    async def send_command(self, text: str) -> None:
        stdin = self._proc.stdin
        if stdin is None or stdin.is_closing() or not self.alive:
            raise EnvironmentError_("the server process is not running")
        stdin.write(text.encode() + b"\n")
        try:
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise EnvironmentError_("the server process closed its console") from None

    async def send_signal(self, signame: str) -> None:
        self._signal_group(parse_signal(signame))

    async def kill(self) -> None:
        self._signal_group(signals.SIGKILL)

    def _signal_group(self, sig: signals.Signals) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    async def wait(self) -> ExitInfo:
        return await asyncio.shield(self._exit)


def _limits(config: ServerConfig):
    def apply_in_child() -> None:
        if config.memory_limit > 0:
            size = config.memory_limit * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if config.pids_limit > 0:
            resource.setrlimit(resource.RLIMIT_NPROC, (config.pids_limit, config.pids_limit))

    return apply_in_child


class ProcessRuntime(Runtime):
    kind = "process"

    async def check_limits(self, spec: LaunchSpec) -> list[str]:
        if not spec.config.invocation.strip():
            raise EnvironmentError_("settings.invocation is empty: there is nothing to start")
        warnings = []
        if spec.config.cpu_limit:
            warnings.append("build.cpu_limit is not applied to local processes")
        if spec.config.memory_limit:
            warnings.append("build.memory_limit is applied as an address-space limit (RLIMIT_AS)")
        return warnings

    async def launch(self, spec: LaunchSpec, console: ConsoleSink) -> ProcessHandle:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(spec.folder), **spec.environment}
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", spec.config.invocation,
                cwd=spec.folder, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # own process group: signals reach the whole server
                preexec_fn=_limits(spec.config),
                limit=MAX_LINE,
            )
        except OSError as exc:
            raise EnvironmentError_(f"could not start the server process: {exc.strerror or exc}") from None
        return LocalProcess(proc, console)

    async def reap_orphan(self, config: ServerConfig, last_started: dict) -> ExitInfo | None:
        pid = last_started.get("pid")
        if not pid or not _is_group_leader(pid):
            return None
        try:
            os.killpg(pid, signals.SIGKILL)
        except ProcessLookupError:
            return None
        return ExitInfo(exit_code=None, signal="SIGKILL", reason="left running by a previous daemon; killed at boot")


def _is_group_leader(pid: int) -> bool:
    """True when `pid` still leads its own process group (so it is most likely our old child and
    not an unrelated process that reused the number)."""
    try:
        return os.getpgid(pid) == pid and Path(f"/proc/{pid}").exists()
    except (ProcessLookupError, PermissionError):
        return False
