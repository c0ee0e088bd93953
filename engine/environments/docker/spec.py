"""What a server's container looks like: name, labels, command, mounts, limits.

Kept apart from the runtime so the mapping from a server definition to Docker's create call can
be read (and checked against Wings) in one place (Wings' environment/docker/container.go Create).

The command. Wings sets none: the image's own ENTRYPOINT and CMD run, and a yolk's entrypoint.sh
reads `STARTUP` from the environment, turns its `{{VAR}}` into `${VAR}`, cds into /home/container
and runs it. wingman does the same whenever the image declares something to run: an ENTRYPOINT,
or a CMD other than a bare shell (most yolks, java_* among them, have no ENTRYPOINT, only
`CMD ["/bin/bash", "/entrypoint.sh"]`). An image that declares nothing (the bare imported busybox
of the tests: Docker would refuse to create it), or only a shell (`CMD ["/bin/sh"]`, which would sit
reading stdin and never look at STARTUP), gets `/bin/sh -c <invocation>`, as wingman always did.
The image is inspected once per start, by the pre-boot check (DockerRuntime.check_limits).

Housekeeping as Wings does it: the hostname is the server's uuid, `docker.domainname` its domain;
the DNS servers of `docker.network.dns` when the container joins a network (not `none`, `host`);
the log driver of `docker.log_config` (an empty type leaves the engine's default); the user
namespace mode `docker.userns_mode`; Wings' labels `Service=Pterodactyl` and
`ContainerType=server_process`, beside the definition's own `labels` and wingman's `wingman.server`.
On the node's bridge network a SERVER_IP of 127.0.0.1 (the container's own loopback, where no
player reaches it) becomes `docker.network.interface`, the bridge address its 127.0.0.1
allocation is also published on (engine.environments.docker.network), as Wings does.

Limits: every one of `build`, as Wings maps it (engine.environments.docker.limits).

The container gets what Wings gives it, and no more (Wings' environment/docker/container.go):
the server's own unprivileged uid and gid (engine.environments.server_users; Wings has one user
for every server), `no-new-privileges`, a read-only root filesystem with a small tmpfs on /tmp,
Wings' list of dropped capabilities, a pids limit, and nothing mounted but the server's folder.
Docker gives the tmpfs the mode of the image's own /tmp (1777 in every yolk; a `mode=` option is
overridden by that copy), so an image whose /tmp is 0755 leaves the server no /tmp, as under Wings.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVarTuple

from docker.errors import APIError, NotFound
from docker.types import LogConfig

from wingman.engine.config_docker import DockerConfig
from wingman.engine.environments.base import LaunchSpec, RuntimeFailure
from wingman.engine.environments.docker.images import local_name
from wingman.engine.environments.docker.limits import container_resources
from wingman.engine.environments.docker.network import container_network, joins_no_network, published
from wingman.engine.environments.docker.policy import DROPPED_CAPABILITIES
from wingman.engine.environments.docker.sdk import DockerAPI, ImageConfig
from wingman.engine.servers.definition import ServerConfig

LABEL = "wingman.server"  # value: the server's uuid; the events watcher filters on it
WORKDIR = "/home/container"  # where the server's folder is mounted, as in Wings
ATTACH = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}  # no `logs`: only what comes next
SHELLS = {"sh", "bash", "ash", "dash", "zsh"}  # a CMD of one of these alone runs nothing of STARTUP

Ts = TypeVarTuple("Ts")


def container_name(uuid: str) -> str:
    return f"wingman-{uuid}"


def server_image(config: ServerConfig) -> str:
    """The server's image; a definition without one cannot run under Docker."""
    if not config.image:
        raise RuntimeFailure("settings.container.image is required to run a server under Docker")
    return config.image


def image_config(api: DockerAPI, image: str) -> ImageConfig:
    """The image's `Config` (Entrypoint, Cmd, ...); ImageNotFound when the engine has no such image."""
    return api.inspect_image(image).get("Config") or {}


def runs_own_command(image_config: ImageConfig | None) -> bool:
    """Whether the image declares something to run that may read STARTUP (the module's docstring)."""
    if not image_config:
        return False
    if image_config.get("Entrypoint"):
        return True
    cmd = image_config.get("Cmd") or []
    return bool(cmd) and not (len(cmd) == 1 and cmd[0].rsplit("/", 1)[-1] in SHELLS)


def server_labels(cfg: ServerConfig) -> dict[str, str]:
    """The definition's `labels` (Wings' settings.labels), then Wings' and wingman's own, which win."""
    own = (cfg.definition.get("settings") or {}).get("labels")
    labels = {k: v for k, v in own.items() if isinstance(v, str)} if isinstance(own, dict) else {}
    return {**labels, "Service": "Pterodactyl", "ContainerType": "server_process", LABEL: cfg.uuid}


def container_environment(spec: LaunchSpec, docker_config: DockerConfig, network: str) -> dict[str, str]:
    """The server's variables; on the node's bridge, SERVER_IP 127.0.0.1 is the bridge's address."""
    env = dict(spec.environment)
    net = docker_config.network
    if network == net.name and net.interface and env.get("SERVER_IP") == "127.0.0.1":
        env["SERVER_IP"] = net.interface
    return env


def log_config(docker_config: DockerConfig) -> LogConfig | None:
    kind = docker_config.log_config.type
    return LogConfig(type=kind, config=dict(docker_config.log_config.config)) if kind else None


def container_spec(
    api: DockerAPI, spec: LaunchSpec, docker_config: DockerConfig, image: ImageConfig | None = None
) -> dict[str, object]:
    """Keyword arguments for `APIClient.create_container`. `image`: the image's `Config` (its
    Entrypoint and Cmd decide the command) when pre-boot inspected it already; else inspected here."""
    cfg = spec.config
    name = local_name(server_image(cfg))  # Wings' `~` (never pulled) is no part of the engine's name
    if image is None:
        image = image_config(api, name)
    folder = str(Path(spec.folder).resolve())
    network = container_network(cfg, docker_config)  # engine.environments.docker.network
    exposed, bindings = published(cfg, docker_config, network)
    host_config = api.create_host_config(
        binds={folder: {"bind": WORKDIR, "mode": "rw"}},
        network_mode=network,
        port_bindings=bindings,
        read_only=True,
        tmpfs={"/tmp": f"rw,exec,nosuid,size={docker_config.tmpfs_size}M"},
        security_opt=["no-new-privileges"],
        cap_drop=list(DROPPED_CAPABILITIES),
        dns=None if joins_no_network(network) else list(docker_config.network.dns),
        log_config=log_config(docker_config),
        **container_resources(cfg, docker_config),
    )
    if docker_config.userns_mode:  # the SDK knows only "host"; the engine judges the others
        host_config["UsernsMode"] = docker_config.userns_mode
    # A daemon that is not root, and opted in to running servers as itself, has no user to give.
    user = spec.user.docker_user if spec.user is not None else f"{os.getuid()}:{os.getgid()}"
    return dict(
        image=name,
        user=user,
        command=None if runs_own_command(image) else ["/bin/sh", "-c", cfg.invocation],
        name=container_name(cfg.uuid),
        hostname=cfg.uuid,
        domainname=docker_config.domainname or None,
        labels=server_labels(cfg),
        environment=container_environment(spec, docker_config, network),
        working_dir=WORKDIR,
        ports=exposed,  # the allocations' ports, TCP and UDP
        stdin_open=True,  # stdin stays open when our attach goes away (stdin_once is off)
        tty=False,  # separate stdout/stderr frames; with a tty, ^P^Q on stdin would detach us
        detach=True,
        host_config=host_config,
        use_config_proxy=False,  # no proxy variables from a ~/.docker/config.json slipping in
    )


def missing_image(image: str | None) -> str:
    return f"image {image} is not present on this node"


def quiet(fn: Callable[[*Ts], object], *args: *Ts) -> None:
    """A kill that may race with the container's own exit: 'not running' is success."""
    try:
        fn(*args)
    except (NotFound, APIError):
        pass
