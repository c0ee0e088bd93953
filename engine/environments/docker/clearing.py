"""A server's old container, removed while its next start runs pre-boot.

A stopped container stays (for `docker inspect` and `docker logs`, as in Wings) until its server
next starts. The launch used to remove it first, on its own path: about 8 ms of the engine's time
here, in every restart. The start now asks for the removal as pre-boot begins; the launch, and a
delete, wait for it instead of racing it (Docker answers 409 to a container being removed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from docker.errors import APIError, NotFound

from wingman.engine.environments.docker.sdk import DockerAPI

log = structlog.get_logger("wingman.docker")


def clear(api: DockerAPI, name: str) -> None:
    """In a worker thread: remove the container `name` unless it runs (the launch adopts that)."""
    try:
        current = api.inspect_container(name)
        if not current["State"].get("Running"):
            api.remove_container(current["Id"])  # not forced: one that runs now stays
    except NotFound:  # none to clear (a first start), or gone meanwhile: nothing to say
        pass
    except APIError as exc:  # started or being removed meanwhile: the launch sees to it
        log.debug("old container not cleared before the launch", container=name, error=str(exc))


class OldContainers:
    """The removals under way, by container name."""

    def __init__(self, run: Callable[[str], asyncio.Future[None]]):
        self._run = run  # starts `clear` for a name on the runtime's executor; returns its future
        self._pending: dict[str, asyncio.Future[None]] = {}

    def clear(self, name: str) -> None:
        """Begin removing the container (once, however many starts ask); returns at once."""
        if name in self._pending:
            return
        fut = self._pending[name] = self._run(name)

        def done(f: asyncio.Future[None]) -> None:
            if self._pending.get(name) is f:
                del self._pending[name]
            if not f.cancelled() and f.exception() is not None:  # e.g. the engine went away
                log.debug("old container not cleared before the launch", container=name, error=str(f.exception()))

        fut.add_done_callback(done)

    async def cleared(self, name: str) -> None:
        """Wait for that container's removal, if one is under way."""
        pending = self._pending.get(name)
        if pending is not None:
            await asyncio.wait({pending})
