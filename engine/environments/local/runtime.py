"""The local process runtime (the default): a server is a process on this machine that outlives
the daemon, so a daemon restart (an upgrade, a crash) adopts it instead of killing it.

Each server runs `/bin/sh -c <wrapper> <invocation> <exit file>` in its own folder and its own
session and process group (so stop signals and kill reach everything it spawned). The wrapper
`eval`s the invocation as its own shell would, ignores nothing the server sees, survives a stop
signal sent to the group (its trap runs a no-op, so it outlasts the server's own shutdown) and
writes the command's exit status to `<run dir>/exit` when it ends: an adopted process is not the
daemon's child, and that file is how its exit status reaches a later daemon.

Per server, under `<run directory>/<uuid>/` (system.run_directory): `console.log` (stdout and
stderr, appended to, followed by the daemon), `stdin` (a FIFO the server holds open for reading
and writing), `identity.json` (written by the wrapper before the invocation runs) and `exit`.

The process runs code its users uploaded, so it gets nothing of the daemon: `subprocess.Popen`
with `close_fds=True` closes every descriptor but the three standard streams in the child,
whatever their inheritable flag (Sanic marks its listening socket inheritable, and uvloop's own
subprocess launch passed the daemon's sockets on). It runs as a user of its own, never root
(engine.environments.server_users), and its environment is its own variables plus PATH and HOME,
which only its own shell sees (see WRAPPER). Each start records the process's identity (pid,
start time, boot): a later daemon adopts that process only, never one that reused its pid.

Limits: `build.memory_limit` becomes RLIMIT_AS (address space, which over-counts what a process
really uses) and `build.pids_limit` RLIMIT_NPROC (counted per user, not per server), applied by
`prlimit` (util-linux) in front of the shell rather than by Python code run between fork and exec,
which is unsafe in a threaded daemon. CPU and IO limits cannot be applied to a plain process and
are reported as warnings by pre-boot.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shlex
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from wingman.engine.environments.base import (
    ConsoleSink,
    ExitInfo,
    LaunchSpec,
    ProcessHandle,
    Runtime,
    RuntimeFailure,
    StartedData,
)
from wingman.engine.environments.local.console_files import RECENT_ON_ADOPTION, ConsoleFiles
from wingman.engine.environments.local.handle import LocalProcess, decode_status
from wingman.engine.environments.local.identity import ProcessIdentity, boot_id, identify, still_running
from wingman.engine.environments.server_users import privilege_drop
from wingman.engine.servers.definition import ServerConfig

# The wrapper stays the daemon's user: the files it writes (identity, exit status) are what a later
# daemon trusts, so the server must not be able to forge them. It runs with LAUNCH_ENVIRONMENT, not
# the server's variables: a root process started with the server's LD_LIBRARY_PATH=./linux64 (as
# eggs set it) would load a libc the server planted in its folder. The server's variables reach
# only the shell that runs the invocation, after the privilege drop, on its descriptor 3 (from a
# file in the run directory, which only the daemon's user can open; never argv: any user may read
# another's /proc/<pid>/cmdline). dash takes only descriptors 0 to 9 in redirections, hence 3; it
# is opened in a subshell that becomes the server's, so the wrapper never holds it.
#
# $1: the invocation, $2: the exit file, $3: the identity file, $4: the file of the server's
# variables, $5: INNER, and after them the command that drops root's powers
# (engine.environments.server_users), if any. It first writes who it is (pid, start time, boot):
# whatever happens to the daemon from the moment it forks, the next one finds the process it
# launched. `trap :` (not `trap ''`) so the server's own commands keep the default disposition of
# these signals; the EXIT trap writes the exit status when the invocation ends.
WRAPPER = """readonly __wingman_run="$1" __wingman_exit="$2" __wingman_identity="$3" __wingman_env="$4"
readonly __wingman_inner="$5"
shift 5
read -r __wingman_stat < /proc/$$/stat
read -r __wingman_boot < /proc/sys/kernel/random/boot_id
__wingman_field22() { __wingman_ticks="${20}"; }
__wingman_field22 ${__wingman_stat##*) }
printf '{"pid": %s, "start_ticks": %s, "boot_id": "%s"}\\n' "$$" "$__wingman_ticks" "$__wingman_boot" \\
    > "$__wingman_identity"
trap : TERM INT QUIT HUP
trap 'printf "%s\\n" "$?" > "$__wingman_exit"' EXIT
(exec 3< "$__wingman_env"; exec "$@" /bin/sh -c "$__wingman_inner" wingman-server "$__wingman_run")
"""
# The server's own shell ($1: the invocation; its variables on descriptor 3): takes its variables,
# closes the descriptor, and runs the invocation as its own shell would.
INNER = (
    '__wingman_env=$(/bin/cat <&3) || exit 126; exec 3<&-; eval "$__wingman_env"; unset __wingman_env; '
    '__wingman_run=$1; set --; eval "$__wingman_run"'
)
# What the processes that still hold root's powers (the wrapper, prlimit, setpriv) run with.
LAUNCH_ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class ProcessRuntime(Runtime):
    kind = "process"
    detachable = True  # local servers outlive the daemon and are adopted at the next boot

    def __init__(self, run_directory: Path):
        self.run_directory = Path(run_directory)
        self._consoles = ConsoleFiles()
        self._handles: dict[LocalProcess, asyncio.Task[ExitInfo]] = {}  # live handles, each with its exit watch

    def _run_dir(self, uuid: str) -> Path:
        return self.run_directory / uuid

    async def close(self) -> None:
        """Stop following every server; they keep running (adopted at the next boot)."""
        for handle, watch in list(self._handles.items()):
            handle.detach()
            watch.cancel()
        self._handles.clear()
        self._consoles.close()

    async def check_limits(self, spec: LaunchSpec) -> list[str]:
        if not spec.config.invocation.strip():
            raise RuntimeFailure("settings.invocation is empty: there is nothing to start")
        _limit_prefix(spec.config)
        warnings = []
        if spec.config.cpu_limit:
            warnings.append("build.cpu_limit is not applied to local processes")
        if spec.config.memory_limit:
            warnings.append("build.memory_limit is applied as an address-space limit (RLIMIT_AS)")
        return warnings

    async def launch(self, spec: LaunchSpec, console: ConsoleSink) -> ProcessHandle:
        run_dir = self._prepare_run_dir(spec.config.uuid)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(spec.folder), **spec.environment}
        env.setdefault("PYTHONUNBUFFERED", "1")
        drop = privilege_drop(spec.user) if spec.user is not None else []
        _fits_exec(env, spec.config.invocation)
        _write_variables(run_dir / "environment", env)
        argv = [
            *_limit_prefix(spec.config),
            "/bin/sh",
            "-c",
            WRAPPER,
            "wingman-server",
            spec.config.invocation,
            str(run_dir / "exit"),
            str(run_dir / "identity.json"),
            str(run_dir / "environment"),
            INNER,
            *drop,
        ]
        console_fd = os.open(run_dir / "console.log", os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
        stdin_fd = os.open(run_dir / "stdin", os.O_RDWR)  # the server's end: never an end of input
        writer = os.open(run_dir / "stdin", os.O_RDWR | os.O_NONBLOCK)  # ours (see console_input)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=spec.folder,
                env=LAUNCH_ENVIRONMENT,
                stdin=stdin_fd,
                stdout=console_fd,
                stderr=console_fd,
                close_fds=True,  # nothing of the daemon but the three streams: see the module doc
                start_new_session=True,  # own session and process group: signals reach the whole server
            )
        except OSError as exc:
            os.close(console_fd)
            os.close(writer)
            raise RuntimeFailure(f"could not start the server process: {exc.strerror or exc}") from None
        except (ValueError, subprocess.SubprocessError) as exc:
            os.close(console_fd)
            os.close(writer)
            raise RuntimeFailure(f"could not start the server process: {exc}") from None
        finally:
            os.close(stdin_fd)
        identity = identify(proc.pid)
        if identity is None:  # gone already (exec failed after fork, or it exited at once)
            identity = _exited_identity(proc.pid)
        handle = LocalProcess(identity, run_dir, child=proc)
        try:
            await handle.attach(console_fd, writer, self._consoles, console)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        self._keep(handle)
        return handle

    def _prepare_run_dir(self, uuid: str) -> Path:
        run_dir = self._run_dir(uuid)
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in ("exit", "identity.json"):
            (run_dir / stale).unlink(missing_ok=True)
        fifo = run_dir / "stdin"
        try:
            if not stat.S_ISFIFO(os.lstat(fifo).st_mode):
                fifo.unlink()
                os.mkfifo(fifo, 0o600)
        except FileNotFoundError:
            os.mkfifo(fifo, 0o600)
        return run_dir

    def _keep(self, handle: LocalProcess) -> None:
        """Hold the handle until its process exits (close() detaches the ones still running)."""
        watch = asyncio.ensure_future(handle.wait())
        self._handles[handle] = watch
        watch.add_done_callback(lambda _: self._handles.pop(handle, None))

    async def destroy(self, config: ServerConfig) -> list[str]:
        """A deleted server's console file, FIFO and exit status go (it is offline: nothing uses them).
        The run directory is the daemon's own (0700), never written by the server."""
        run_dir = self._run_dir(config.uuid)
        if not run_dir.exists():
            return []
        await asyncio.to_thread(shutil.rmtree, run_dir, ignore_errors=True)
        return [f"run directory {run_dir} (console file, stdin FIFO, exit status)"]

    async def adopt(
        self, config: ServerConfig, folder: Path, console: ConsoleSink, last_started: StartedData | None = None
    ) -> ProcessHandle | None:
        """The server's process from before the daemon restarted, when it is still that very
        process (same pid, start time and boot); None otherwise. The one the log records comes
        first; then the one the run directory names (launched, but the daemon died before it
        could record it)."""
        run_dir = self._run_dir(config.uuid)
        candidates = [last_started or {}, _read_identity(run_dir)]
        recorded = next((c for c in candidates if still_running(c)), None)
        if recorded is None:
            return None
        pid = recorded["pid"]
        try:
            console_fd = _open_stream(pid, 1, os.O_RDWR, stat.S_ISREG)
        except OSError:
            return None  # it exited in between, or its output is not what we gave it
        try:  # the FIFO itself, not the server's fd 0: a server may have closed its stdin
            stdin_fd = os.open(self._run_dir(config.uuid) / "stdin", os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW)
            if not stat.S_ISFIFO(os.fstat(stdin_fd).st_mode):
                raise OSError("the server's stdin is not its FIFO")
        except OSError:
            os.close(console_fd)
            return None
        identity = identify(pid)
        if identity is None or identity.start_ticks != recorded["start_ticks"]:
            os.close(console_fd)
            os.close(stdin_fd)
            return None
        handle = LocalProcess(identity, self._run_dir(config.uuid))
        try:
            await handle.attach(console_fd, stdin_fd, self._consoles, console, recent=RECENT_ON_ADOPTION)
        except ProcessLookupError:
            return None
        self._keep(handle)
        return handle

    async def reap_orphan(self, config: ServerConfig, last_started: StartedData) -> ExitInfo | None:
        """A server the log says is up but that could not be adopted. Its recorded process is gone
        (or its pid now belongs to someone else, who is left alone): say how it ended."""
        status = self._run_dir(config.uuid) / "exit"
        try:
            text = status.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text.isdigit():
            info = decode_status(int(text))
            return ExitInfo(info.exit_code, info.signal, reason="exited while the daemon was down")
        pid = (last_started or {}).get("pid")
        if pid and identify(pid) is not None:
            return ExitInfo(None, reason="gone while the daemon was down (its pid now belongs to another process)")
        return ExitInfo(None, reason="gone while the daemon was down")


def _open_stream(pid: int, fd: int, mode: int, kind: Callable[[int], bool]) -> int:
    """Open what `pid` has as its descriptor `fd` (through /proc), checking its type."""
    opened = os.open(f"/proc/{pid}/fd/{fd}", mode)
    if not kind(os.fstat(opened).st_mode):
        os.close(opened)
        raise OSError(f"descriptor {fd} of {pid} is not the stream it was given")
    return opened


def _read_identity(run_dir: Path) -> StartedData:
    try:
        found = json.loads((run_dir / "identity.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _fits_exec(env: dict[str, str], invocation: str) -> None:
    """The server's variables and command must fit the kernel's limit for one exec (ARG_MAX), as
    its own shell will pass them on. Said here, before anything runs: past the limit that shell's
    exec would fail inside the server, as a bare exit code 126."""
    # Each string and its terminating NUL, and a pointer to it (the kernel counts both).
    size = sum(len(f"{name}={value}".encode()) + 1 + 8 for name, value in env.items())
    size += len(invocation.encode()) + 1 + 8
    limit = os.sysconf("SC_ARG_MAX")
    if size > limit:
        raise RuntimeFailure(
            f"could not start the server process: {os.strerror(errno.E2BIG)} (its variables "
            f"and command take {size} bytes; the kernel's limit for one exec is {limit})"
        )


def _write_variables(path: Path, env: dict[str, str]) -> None:
    """`env` as the shell's `export` lines, in a file only the daemon's user can open."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items()))


def _exited_identity(pid: int) -> ProcessIdentity:
    return ProcessIdentity(pid, -1, boot_id())


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
        raise RuntimeFailure("build limits need the `prlimit` program (util-linux), which is not installed")
    return [prlimit, *limits, "--"]
