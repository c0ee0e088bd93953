"""The permissions a websocket token lists, as the Panel names them, and what each one allows.

`*` grants every permission but the `admin.` ones (Wings' rule): a Panel administrator's token
lists those explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable

CONNECT = "websocket.connect"
CONSOLE = "control.console"
START = "control.start"
STOP = "control.stop"
RESTART = "control.restart"
ADMIN_ERRORS = "admin.websocket.errors"  # sees the real text of daemon errors
ADMIN_INSTALL = "admin.websocket.install"  # hears what an install script prints (`install output`), as with Wings

# What each power action over the socket needs; a kill is a stop that does not wait.
POWER = {"start": START, "stop": STOP, "restart": RESTART, "kill": STOP}


def granted(permissions: Iterable[str], needed: str) -> bool:
    held = set(permissions)
    return needed in held or ("*" in held and not needed.startswith("admin."))
