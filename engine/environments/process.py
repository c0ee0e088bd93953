"""The local process runtime (the default): a server is a child process of the daemon.

Each server runs through `/bin/sh -c <invocation>` in its own folder and its own session and
process group (so stop signals and kill reach everything it spawned), with its environment
variables, stdin kept open for console commands, and stdout+stderr read into console lines.

The process runs code its users uploaded, so it gets nothing of the daemon: it is started by
`subprocess.Popen` with `close_fds=True`, which closes every descriptor but the three standard
streams in the child whatever their inheritable flag (Sanic marks its listening socket
inheritable, and the event loop's own subprocess launch, uvloop's in particular, passed the
daemon's sockets on). Its environment is exactly its own variables plus PATH and HOME. The exit is
watched through a pidfd on the event loop, so any loop works and no thread waits per process.

Limits: `build.memory_limit` becomes RLIMIT_AS (address space, which over-counts what a process
really uses) and `build.pids_limit` RLIMIT_NPROC (counted per user, not per server), applied by
`prlimit` (util-linux) in front of the shell rather than by Python code run between fork and exec,
which is unsafe in a threaded daemon. CPU and IO limits cannot be applied to a plain process and
are reported as warnings by pre-boot. A daemon restart cannot re-attach to a child's pipes: such
orphans are killed at boot and their exit is recorded (see `reap_orphan`).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal as signals
import subprocess
from pathlib import Path

from engine.environments.base import (
    ConsoleSink, EnvironmentError_, ExitInfo, LaunchSpec, ProcessHandle, Runtime,
)
from engine.environments.lines import LineSplitter, OutputThrottle
from engine.servers.definition import ServerConfig
from engine.signals import parse_signal

READ_CHUNK = 64 * 1024
STDIN_BACKLOG = 64 * 1024  # bytes of commands a server may leave unread before we refuse more
DRAIN_SECONDS = 2.0  # after the process exits, how long its last output may take to arrive


class LocalProcess(ProcessHandle):
    runtime = "process"

    def __init__(self, proc: subprocess.Popen, console: ConsoleSink):
        self._proc = proc
        self.pid = proc.pid
        self._lines = LineSplitter(console)
        self._exit: asyncio.Future[ExitInfo] = asyncio.get_running_loop().create_future()
        self._stdin: asyncio.WriteTransport | None = None
        self._stdout: asyncio.ReadTransport | None = None
        self._pidfd: int | None = None
        self._exited = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def attach(self) -> "LocalProcess":
        """Wire the pipes and the exit watch into the running loop."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_CHUNK)
        self._stdout, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self._proc.stdout)
        self._stdin, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, self._proc.stdin)
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._on_exit)
        self._tasks.append(loop.create_task(self._watch(reader), name=f"process-{self.pid}"))
        return self

    def _on_exit(self) -> None:
        # A pidfd stays readable once the process is gone: stop watching it at the first call.
        asyncio.get_running_loop().remove_reader(self._pidfd)
        self._exited.set()

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        throttle = OutputThrottle()
        while data := await reader.read(READ_CHUNK):
            self._lines.feed(data)
            pause = throttle.delay_after(len(data))
            if pause:
                await asyncio.sleep(pause)  # the server's pipe fills and its writes wait
        self._lines.flush()

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        pump = asyncio.get_running_loop().create_task(self._pump(reader))
        try:
            await self._exited.wait()
            # Children of the server may still hold its stdout: take what is there, then stop.
            await asyncio.wait({pump}, timeout=DRAIN_SECONDS)
        finally:
            pump.cancel()
            self._close()
        code = self._proc.wait()  # the pidfd said it exited: this reaps without blocking
        info = ExitInfo(exit_code=code) if code >= 0 else ExitInfo(exit_code=128 - code, signal=signals.Signals(-code).name)
        if not self._exit.done():
            self._exit.set_result(info)

    def _close(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        for transport in (self._stdin, self._stdout):
            if transport is not None:
                transport.close()

    @property
    def alive(self) -> bool:
        return not self._exit.done()

    async def send_command(self, text: str) -> None:
        stdin = self._stdin
        if stdin is None or stdin.is_closing() or not self.alive:
            raise EnvironmentError_("the server process is not running")
        if stdin.get_write_buffer_size() > STDIN_BACKLOG:
            raise EnvironmentError_("the server is not reading its console input; the command was not sent")
        stdin.write(text.encode("utf-8") + b"\n")

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


def _limit_prefix(config: ServerConfig) -> list[str]:
    """`prlimit` in front of the shell when the definition sets limits (the values are bounded by
    the definition's validation, so they always fit in an rlimit)."""
    limits = []
    if config.memory_limit > 0:
        limits.append(f"--as={config.memory_limit * 1024 * 1024}")
    if config.pids_limit > 0:
        limits.append(f"--nproc={config.pids_limit}")
    if not limits:
        return []
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise EnvironmentError_("build limits need the `prlimit` program (util-linux), which is not installed")
    return [prlimit, *limits, "--"]


class ProcessRuntime(Runtime):
    kind = "process"

    async def check_limits(self, spec: LaunchSpec) -> list[str]:
        if not spec.config.invocation.strip():
            raise EnvironmentError_("settings.invocation is empty: there is nothing to start")
        _limit_prefix(spec.config)
        warnings = []
        if spec.config.cpu_limit:
            warnings.append("build.cpu_limit is not applied to local processes")
        if spec.config.memory_limit:
            warnings.append("build.memory_limit is applied as an address-space limit (RLIMIT_AS)")
        return warnings

    async def launch(self, spec: LaunchSpec, console: ConsoleSink) -> ProcessHandle:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(spec.folder), **spec.environment}
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = [*_limit_prefix(spec.config), "/bin/sh", "-c", spec.config.invocation]
        try:
            proc = subprocess.Popen(
                argv, cwd=spec.folder, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                close_fds=True,  # nothing of the daemon but the three streams: see the module doc
                start_new_session=True,  # own session and process group: signals reach the whole server
                bufsize=0,
            )
        except OSError as exc:
            raise EnvironmentError_(f"could not start the server process: {exc.strerror or exc}") from None
        except (ValueError, subprocess.SubprocessError) as exc:
            raise EnvironmentError_(f"could not start the server process: {exc}") from None
        try:
            return await LocalProcess(proc, console).attach()
        except BaseException:
            proc.kill()
            proc.wait()
            raise

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
