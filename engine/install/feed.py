"""An install as a server's websockets hear it, in Wings' events (`server/events.go`): `install
started`, then each line the script prints (`install output`) and the daemon's messages around it
(`daemon message`: "Starting installation process, this could take a few minutes...",
"Installation process completed."), then `install completed` once the Panel has been told.

Only listeners hear it: nothing is kept (a socket that connects in the middle hears the rest, as
with Wings, whose `send logs` sends nothing while a server installs).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

log = structlog.get_logger("wingman.install")

STARTED, OUTPUT, MESSAGE, COMPLETED = "install started", "install output", "daemon message", "install completed"
STARTING_MESSAGE = "Starting installation process, this could take a few minutes..."  # Wings' words
COMPLETED_MESSAGE = "Installation process completed."

Listener = Callable[[str, str], None]  # (kind, text): one of the four kinds above


class InstallFeed:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def listen(self, uuid: str, listener: Listener) -> Callable[[], None]:
        """Hear the server's installs as `listener(kind, text)`; returns the way to stop listening."""
        self._listeners.setdefault(uuid, []).append(listener)

        def stop() -> None:
            listeners = self._listeners.get(uuid, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._listeners.pop(uuid, None)

        return stop

    def tell(self, uuid: str, kind: str, text: str = "") -> None:
        for listener in list(self._listeners.get(uuid, ())):
            try:
                listener(kind, text)
            except Exception:
                log.exception("an install listener failed", server=uuid)
