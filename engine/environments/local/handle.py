"""One running local server, as the process runtime hands it to the engine: whether this daemon
launched it or adopted it after a restart.

- Exit: a pidfd on the process, read by the event loop (any loop, no thread). A process this
  daemon launched is its child and is reaped for its exit status; an adopted one is not, so its
  exit status comes from the file the launch wrapper writes when the server's command ends.
- Console: its output file is followed (engine.environments.local.console_files); commands are written
  to its stdin FIFO (engine.environments.local.console_input), which the server holds open for reading
  *and* writing, so it never sees an end of input while no daemon is there.
- Stop signals and kill go to its whole process group.
"""

from __future__ import annotations

import asyncio
import os
import signal as signals
import subprocess
from pathlib import Path

from wingman.engine.environments.base import ConsoleSink, ExitInfo, ProcessHandle, RuntimeFailure
from wingman.engine.environments.local.console_files import ConsoleFiles, FollowedFile
from wingman.engine.environments.local.console_input import ConsoleInput
from wingman.engine.environments.local.identity import ProcessIdentity
from wingman.engine.signals import parse_signal

UNKNOWN_EXIT = "exited while adopted, and left no exit status"


class LocalProcess(ProcessHandle):
    runtime = "process"
    pid: int  # always: a handle is one process's

    def __init__(self, identity: ProcessIdentity, run_dir: Path, child: subprocess.Popen[bytes] | None = None):
        self.identity = identity
        self.pid = identity.pid
        self.start_ticks = identity.start_ticks
        self.boot_id = identity.boot_id
        self.adopted = child is None
        self.run_dir = run_dir
        self._child = child
        self._exit: asyncio.Future[ExitInfo] = asyncio.get_running_loop().create_future()
        self._stdin: ConsoleInput | None = None
        self._console: FollowedFile | None = None
        self._pidfd: int | None = None

    async def attach(
        self, console_fd: int, stdin_fd: int, files: ConsoleFiles, sink: ConsoleSink, recent: int = 0
    ) -> LocalProcess:
        """Watch the process's exit, follow its console (taking `console_fd`) and open its stdin
        (taking `stdin_fd`). Raises ProcessLookupError when the process is already gone."""
        loop = asyncio.get_running_loop()
        self._pidfd = os.pidfd_open(self.pid)
        try:
            self._stdin = ConsoleInput(stdin_fd)
            self._console = files.follow(console_fd, str(self.run_dir / "console.log"), sink, recent)
        except BaseException:
            os.close(self._pidfd)
            self._pidfd = None
            raise
        loop.add_reader(self._pidfd, self._on_exit, self._pidfd)
        return self

    def _on_exit(self, pidfd: int) -> None:
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        self._pidfd = None
        info = self._exit_info()
        if self._console is not None:
            self._console.drain()
            self._console.close()
        if self._stdin is not None:
            self._stdin.close()
        if not self._exit.done():
            self._exit.set_result(info)

    def _exit_info(self) -> ExitInfo:
        if self._child is not None:
            return decode_status(self._child.wait())  # readable pidfd: reaps without blocking
        try:
            text = (self.run_dir / "exit").read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return ExitInfo(exit_code=None, reason=UNKNOWN_EXIT)
        return decode_status(int(text)) if text.isdigit() else ExitInfo(exit_code=None, reason=UNKNOWN_EXIT)

    def detach(self) -> None:
        """Stop following the process (daemon shutdown); it keeps running, to be adopted later."""
        loop = asyncio.get_running_loop()
        if self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._console is not None:
            self._console.close()
        if self._stdin is not None:
            self._stdin.close()

    @property
    def alive(self) -> bool:
        return not self._exit.done()

    async def send_command(self, text: str) -> None:
        if self._stdin is None or not self.alive:
            raise RuntimeFailure("the server process is not running")
        self._stdin.write(text.encode("utf-8") + b"\n")

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


def decode_status(code: int) -> ExitInfo:
    """An exit status as the engine records it. A negative one (from waitpid) is a signal; a
    shell reports a command killed by signal N as 128 + N, which the launch wrapper passes on."""
    if code < 0:
        return ExitInfo(exit_code=128 - code, signal=signals.Signals(-code).name)
    if 128 < code <= 128 + 64:
        try:
            return ExitInfo(exit_code=code, signal=signals.Signals(code - 128).name)
        except ValueError:
            pass
    return ExitInfo(exit_code=code)
