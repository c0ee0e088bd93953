"""What every container is refused, whatever the node's config says."""

from __future__ import annotations

# Wings' list, dropped from Docker's default set. The server runs as a uid that is not root, so it
# holds none of them in effect; dropping them also keeps them out of reach of a setuid program in
# the image, as no-new-privileges does.
DROPPED_CAPABILITIES = (
    "setpcap",
    "mknod",
    "audit_write",
    "net_raw",
    "dac_override",
    "fowner",
    "fsetid",
    "net_bind_service",
    "sys_chroot",
    "setfcap",
)
