"""What a server's container looks like: name, labels, command, mounts, limits.

Kept apart from the runtime so the mapping from a server definition to Docker's create call can
be read (and checked against Wings) in one place.

Wings runs the startup command through the image's entrypoint (its yolk images read `STARTUP`
from the environment). wingman runs `/bin/sh -c <invocation>` as the container's command, so any
image with a POSIX shell works, including one imported from a bare busybox.

The container gets what Wings gives it, and no more (Wings' environment/docker/container.go):
the server's own unprivileged uid and gid (engine.environments.server_users; Wings has one user
for every server), `no-new-privileges`, a read-only root filesystem with a small tmpfs on /tmp,
Wings' list of dropped capabilities, a pids limit, and nothing mounted but the server's folder.
Docker gives the tmpfs the mode of the image's own /tmp (1777 in every yolk; a `mode=` option is
overridden by that copy), so an image whose /tmp is 0755 leaves the server no /tmp, as under Wings.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, NotFound

from engine.environments.base import LaunchSpec
from engine.config_docker import DockerConfig
from engine.environments.docker.network import container_network, published
from engine.environments.docker.policy import DROPPED_CAPABILITIES

LABEL = "wingman.server"  # value: the server's uuid; the events watcher filters on it
WORKDIR = "/home/container"  # where the server's folder is mounted, as in Wings
ATTACH = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}  # no `logs`: only what comes next


def container_name(uuid: str) -> str:
    return f"wingman-{uuid}"


def container_spec(api: docker.APIClient, spec: LaunchSpec, docker_config: DockerConfig) -> dict[str, Any]:
    """Keyword arguments for `APIClient.create_container`."""
    cfg = spec.config
    limits: dict[str, Any] = {}
    if cfg.memory_limit > 0:
        limits["mem_limit"] = f"{cfg.memory_limit}m"
        # swap: 0 = none (memory+swap equals memory), -1 = unlimited, n = n MiB more.
        limits["memswap_limit"] = -1 if cfg.swap < 0 else f"{cfg.memory_limit + cfg.swap}m"
    if cfg.cpu_limit > 0:
        limits["nano_cpus"] = cfg.cpu_limit * 10_000_000  # 100 % of one core = 1e9
    folder = str(Path(spec.folder).resolve())
    network = container_network(cfg, docker_config)  # engine.environments.docker.network
    exposed, bindings = published(cfg, docker_config, network)
    host_config = api.create_host_config(
        binds={folder: {"bind": WORKDIR, "mode": "rw"}}, network_mode=network, port_bindings=bindings,
        pids_limit=cfg.pids_limit if cfg.pids_limit > 0 else docker_config.container_pid_limit,
        read_only=True, tmpfs={"/tmp": f"rw,exec,nosuid,size={docker_config.tmpfs_size}M"},
        security_opt=["no-new-privileges"], cap_drop=list(DROPPED_CAPABILITIES), **limits)
    # A daemon that is not root, and opted in to running servers as itself, has no user to give.
    user = spec.user.docker_user if spec.user is not None else f"{os.getuid()}:{os.getgid()}"
    return dict(
        image=cfg.image,
        user=user,
        command=["/bin/sh", "-c", cfg.invocation],
        name=container_name(cfg.uuid),
        labels={LABEL: cfg.uuid},
        environment=dict(spec.environment),
        working_dir=WORKDIR,
        ports=exposed,  # the allocations' ports, TCP and UDP
        stdin_open=True,  # stdin stays open when our attach goes away (stdin_once is off)
        tty=False,  # separate stdout/stderr frames; with a tty, ^P^Q on stdin would detach us
        detach=True,
        host_config=host_config,
        use_config_proxy=False,  # no proxy variables from a ~/.docker/config.json slipping in
    )


def missing_image(image: str | None) -> str:
    return f"image {image} is not present on this node (no registry pull)"


def quiet(fn, *args) -> None:
    """A kill that may race with the container's own exit: 'not running' is success."""
    try:
        fn(*args)
    except (NotFound, APIError):
        pass
