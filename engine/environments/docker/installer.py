"""The installer container, as Wings runs an egg's install script (server/install.go): named
`<uuid>_installer`, labelled `Service=Pterodactyl` and `ContainerType=server_installer` (and
`wingman.server=<uuid>`, so the runtime's one events watcher sees it exit), running
`[entrypoint, /mnt/install/install.sh]` in the egg's install image with the server's variables,
its folder at /mnt/server and the script's folder at /mnt/install; the install limits
(limits.installer_resources: at least `docker.installer_limits`, no pids limit), /tmp a tmpfs, the
node's DNS, log driver, network (made when missing, as for servers) and user namespace mode.

Root inside, as under Wings: package managers need it, and the script writes the server's folder,
which belongs to the server's own uid (the install then gives everything back to that uid). It
gets less than Docker's default, though: `no-new-privileges` (a setuid program gains nothing),
and of the default capabilities only those apt, dpkg, tar and curl use: CHOWN, DAC_OVERRIDE,
FOWNER, FSETID, SETUID, SETGID (apt's _apt sandbox), KILL. MKNOD, NET_RAW, NET_BIND_SERVICE,
SYS_CHROOT, AUDIT_WRITE, SETPCAP and SETFCAP are dropped (no device nodes, no raw sockets or ping,
no chroot, no file capabilities). Its root filesystem stays writable (packages install there).

Its image is pulled first as Wings does (engine.environments.docker.images.pull: a registry that
cannot be reached leaves the local copy in use). Its output is read from an attach made before it
starts (on the event loop, as a server's console: DockerHandle), its exit comes from the events
watcher, and its whole output is read back from Docker's log afterwards (for the install log).
This module talks to the runtime it belongs to through the runtime's own executor and handles.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import BinaryIO

import structlog
from docker.errors import APIError, NotFound

from wingman.engine.environments.base import ExitInfo, Runtime
from wingman.engine.environments.docker.attach import take_attach_socket
from wingman.engine.environments.docker.handle import DockerHandle
from wingman.engine.environments.docker.images import local_name, pull
from wingman.engine.environments.docker.limits import installer_resources
from wingman.engine.environments.docker.network import joins_no_network
from wingman.engine.environments.docker.runtime import DockerRuntime
from wingman.engine.environments.docker.sdk import ContainerInspect, DockerAPI
from wingman.engine.environments.docker.spec import LABEL, log_config
from wingman.engine.environments.install_runner import SCRIPT_MOUNT, SCRIPT_PATH, SERVER_MOUNT, InstallJob, LineSink

log = structlog.get_logger("wingman.docker")

LABELS = {"Service": "Pterodactyl", "ContainerType": "server_installer"}  # Wings' own
DROPPED = ("mknod", "net_raw", "net_bind_service", "sys_chroot", "audit_write", "setpcap", "setfcap")
OUTPUT = {"stdout": 1, "stderr": 1, "stream": 1}  # its stdin is closed: the script reads nothing
CHUNK = 64 * 1024


def installer_name(uuid: str) -> str:
    return f"{uuid}_installer"  # Wings' name


def _remove(api: DockerAPI, name: str) -> None:
    try:
        api.remove_container(name, force=True, v=True)
    except NotFound:
        pass


def _start(api: DockerAPI, job: InstallJob, runtime: DockerRuntime) -> tuple[ContainerInspect, socket.socket, bytes]:
    """In a worker thread: pull, clear, create, attach, start. Its state, attach socket, leftover."""
    cfg, dc = job.config, runtime.docker_config
    pull(api, job.image, dc, lambda line: log.debug("install image pull", server=cfg.uuid, line=line))
    name = installer_name(cfg.uuid)
    _remove(api, name)
    network = runtime.networks.ensure(api)  # the node's network, made when missing (as for servers)
    host_config = api.create_host_config(
        binds={
            str(Path(job.server_folder).resolve()): {"bind": SERVER_MOUNT, "mode": "rw"},
            str(Path(job.script_folder).resolve()): {"bind": SCRIPT_MOUNT, "mode": "rw"},
        },
        tmpfs={"/tmp": f"rw,exec,nosuid,size={dc.tmpfs_size}M"},
        network_mode=network,
        dns=None if joins_no_network(network) else list(dc.network.dns),
        log_config=log_config(dc),
        security_opt=["no-new-privileges"],
        cap_drop=list(DROPPED),
        **installer_resources(cfg, dc),
    )
    if dc.userns_mode:  # the SDK knows only "host"; the engine judges the others
        host_config["UsernsMode"] = dc.userns_mode
    created = api.create_container(
        image=local_name(job.image),
        command=[job.entrypoint, SCRIPT_PATH],
        name=name,
        hostname="installer",
        labels={**LABELS, LABEL: cfg.uuid},
        environment=dict(job.environment),
        host_config=host_config,
        stdin_open=False,
        tty=False,
        detach=True,
        use_config_proxy=False,
    )
    cid = created["Id"]
    try:
        # Attached before it starts: its first line is in the socket when we read it.
        sock, leftover = take_attach_socket(api.attach_socket(cid, OUTPUT))
        try:
            api.start(cid)
            return api.inspect_container(cid), sock, leftover
        except BaseException:
            sock.close()
            raise
    except BaseException:
        _remove(api, cid)
        raise


def _find(api: DockerAPI, uuid: str) -> tuple[ContainerInspect, socket.socket | None, bytes] | None:
    """In a worker thread: the server's installer as a daemon that stopped left it, or None."""
    try:
        state = api.inspect_container(installer_name(uuid))
    except NotFound:
        return None
    if not state["State"].get("Running"):
        return state, None, b""
    try:
        sock, leftover = take_attach_socket(api.attach_socket(state["Id"], OUTPUT))
    except APIError:  # it exited meanwhile: its exit is read from its state
        return api.inspect_container(state["Id"]), None, b""
    return state, sock, leftover


class DockerInstall:
    """One installer container (engine.environments.install_runner.RunningInstall)."""

    def __init__(self, runtime: DockerRuntime, handle: DockerHandle, state: ContainerInspect):
        self._rt = runtime
        self._handle = handle
        self.container_id = state["Id"]
        config = state.get("Config") or {}
        self.image = config.get("Image")
        command = config.get("Cmd")
        self.entrypoint = command[0] if command else None
        self.running = bool(state["State"].get("Running"))

    async def wait(self) -> ExitInfo:
        return await self._handle.wait()

    async def save_output(self, out: BinaryIO, limit: int) -> str | None:
        def copy(api: DockerAPI) -> str | None:
            written = 0
            try:
                for chunk in api.logs(self.container_id, stdout=True, stderr=True, stream=True, follow=False):
                    if written + len(chunk) > limit:
                        out.write(chunk[: limit - written])
                        return f"the rest of the output is not kept here: it is over {limit // 1048576} MiB"
                    out.write(chunk)
                    written += len(chunk)
            except NotFound:
                return "the installer was gone before its output could be read"
            except APIError as exc:  # a log driver Docker cannot read back (`none`, syslog...)
                return f"Docker kept no output of it that can be read back ({exc.explanation or exc})"
            return None

        return await self._rt._call(copy)

    async def tail(self, lines: int) -> list[str] | None:
        def read(api: DockerAPI) -> list[str] | None:
            try:
                text = api.logs(self.container_id, stdout=True, stderr=True, tail=lines)
            except (NotFound, APIError):
                return None
            return text.decode("utf-8", "replace").splitlines()[-lines:]

        return await self._rt._call(read)

    async def remove(self) -> None:
        await self._rt._call(lambda api: _remove(api, self.container_id))


class DockerInstaller:
    """Docker's installs (engine.environments.install_runner.InstallRunner), on a connected runtime."""

    def __init__(self, runtime: Runtime):
        # The daemon holds its runtimes as `Runtime`s: this one is the Docker runtime, connected.
        if not isinstance(runtime, DockerRuntime):
            raise TypeError(f"Docker's installs run on the Docker runtime, not {type(runtime).__name__}")
        self._rt = runtime

    async def run(self, job: InstallJob, on_line: LineSink) -> DockerInstall:
        state, sock, leftover = await self._rt._call(lambda api: _start(api, job, self._rt))
        return self._adopt(state, sock, leftover, on_line, adopted=False)

    async def find(self, uuid: str, on_line: LineSink) -> DockerInstall | None:
        found = await self._rt._call(lambda api: _find(api, uuid))
        if found is None:
            return None
        return self._adopt(*found, on_line, adopted=True)

    def _adopt(
        self, state: ContainerInspect, sock: socket.socket | None, leftover: bytes, on_line: LineSink, adopted: bool
    ) -> DockerInstall:
        """Its handle joins the runtime's (the events watcher resolves its exit), reading its output."""
        if sock is not None:
            handle = self._rt._register(state, sock, leftover, on_line, adopted)
        else:  # exited already: no output comes any more, its exit is read from its state
            handle = DockerHandle(self._rt, state, on_line, adopted)
            self._rt._handles[handle.container_id] = handle
        if not state["State"].get("Running"):
            handle.schedule_check()
        return DockerInstall(self._rt, handle, state)
