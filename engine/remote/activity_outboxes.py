"""What the node sends its Panel from the log, started and stopped together: activity always
(engine.remote.activity), container status for a Pelican Panel
(engine.remote.activity_container_status). Nothing for a standalone node."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from wingman.engine.config import DaemonConfig
from wingman.engine.remote.activity import activity_outbox
from wingman.engine.remote.activity_container_status import container_status_outbox
from wingman.engine.remote.outbox import Outbox
from wingman.engine.statechart import Statechart
from wingman.engine.store.event_store import EventStore


class PanelOutboxes:
    def __init__(self, outboxes: Sequence[Outbox]):
        self.outboxes = outboxes

    async def start(self) -> None:
        for outbox in self.outboxes:
            await outbox.start()

    async def stop(self) -> None:
        for outbox in self.outboxes:
            await outbox.stop()


def panel_outboxes(config: DaemonConfig, store: EventStore, chart: Callable[[], Statechart]) -> PanelOutboxes | None:
    """`chart`: the chart in force (a state's Panel status is the chart's to say)."""
    candidates = (activity_outbox(config, store), container_status_outbox(config, store, chart))
    found = [o for o in candidates if o is not None]
    return PanelOutboxes(found) if found else None
