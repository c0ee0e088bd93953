"""Which servers install (engine.install), for the power engine: an install holds the server's power
lock as an operation does, from before its state change to after its outcome, and meanwhile every
power action is refused at the door (`ServerInstalling`, Wings' "server is currently installing")
with nothing recorded. One accepted before, that finds the server installing once it may run, is
rejected with the same words.

A reinstall of a server that runs stops it first, through a power operation of its own: that
stop is the one operation an install lets through.
"""

from __future__ import annotations

from wingman.engine.power.inflight import InFlight
from wingman.engine.servers.registry import ServerRegistry
from wingman.engine.statechart import Trigger


class InstallDoor:
    def __init__(self, registry: ServerRegistry, in_flight: InFlight):
        self._registry = registry
        self._in_flight = in_flight  # the power engine's table, which holds each server's lock
        self._installs: dict[str, tuple[str, str | None]] = {}  # server -> (its install, the reinstall's stop)

    def installing(self, uuid: str) -> bool:
        """Whether the server installs: its install is in hand (a reinstall's stop included), or the
        log says it is in the state an install leaves by `installed` (at boot, before recovery).
        Asked of the chart, not of the server's machine: a server only ever asked needs no model."""
        if uuid in self._installs:
            return True
        view = self._registry.views.get(uuid)
        return view is not None and self._registry.chart.allows(Trigger.INSTALLED, view.state)

    def bars(self, uuid: str, op_id: str) -> bool:
        """Whether an accepted operation finds the server installing (the reinstall's own stop does not)."""
        held = self._installs.get(uuid)
        return self.installing(uuid) and (held is None or held[1] != op_id)

    def install_of(self, uuid: str) -> str | None:
        held = self._installs.get(uuid)
        return held[0] if held else None

    def begin(self, uuid: str, install_id: str, stop_id: str | None = None) -> None:
        """From now on the server installs. `stop_id`: the reinstall's own stop, which may still run."""
        self._installs[uuid] = (install_id, stop_id)

    async def lock(self, uuid: str, install_id: str, wait: float) -> bool:
        """Take the server's power lock for its install, waiting up to `wait` seconds."""
        return await self._in_flight.lock(uuid).acquire(install_id, wait)

    def end(self, uuid: str, install_id: str) -> None:
        """The install is over (its outcome durable, or the daemon going down): lock and door open."""
        table = self._in_flight.find(uuid)
        if table is not None and table.lock.holder == install_id:
            table.lock.release(install_id)
            self._in_flight.drop_if_idle(uuid)
        if self.install_of(uuid) == install_id:
            del self._installs[uuid]
