"""What the node's config says of every container, apart from the docker SDK (which the daemon
loads only when a server first needs the engine: engine.environments.docker.on_demand)."""
from __future__ import annotations

from dataclasses import dataclass

# Wings' list, dropped from Docker's default set. The server runs as a uid that is not root, so it
# holds none of them in effect; dropping them also keeps them out of reach of a setuid program in
# the image, as no-new-privileges does.
DROPPED_CAPABILITIES = ("setpcap", "mknod", "audit_write", "net_raw", "dac_override", "fowner", "fsetid",
                        "net_bind_service", "sys_chroot", "setfcap")


@dataclass(frozen=True)
class ContainerPolicy:
    """What the node's config says of every container (Wings' `docker:` keys)."""

    network_mode: str = "none"
    tmpfs_mib: int = 100  # Wings' docker.tmpfs_size: /tmp, the only writable place beside the folder
    pids_limit: int = 512  # Wings' docker.container_pid_limit, when the server's build sets none
