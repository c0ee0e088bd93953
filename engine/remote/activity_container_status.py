"""Pelican's container status (`remote_flavor: pelican`): each server's state changes, told to the
Panel as Pelican's Wings tells them (`POST {remote}/api/remote/servers/{uuid}/container/status`
with `{"data": {"previous_state", "new_state"}}`, `server/server.go` in pelican-dev/wings).

The same outbox as activity (engine.remote.activity): the changes are the log's `state.changed`
events, and what the Panel has taken is a durable cursor of its own. Pelican's Wings sends each
change once, at once, and forgets it when the Panel is down; here the Panel hears every server's
latest change however long it was away. The Panel only keeps a server's current status, so of the
changes waiting for one server only the last is sent (a Panel back after an hour is not replayed
an hour of flapping). A 4xx for one server (a server the Panel does not know: 404) is logged and
skipped: a status is not worth holding the others back, and the next change says it again.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from wingman.engine.config import DaemonConfig
from wingman.engine.events import StateChanged
from wingman.engine.remote.activity import refuses_the_entries
from wingman.engine.remote.client import PanelClient, PanelError
from wingman.engine.remote.outbox import Outbox
from wingman.engine.statechart import Statechart
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.ownership import OwnEvents
from wingman.engine.store.queries import page

log = structlog.get_logger("wingman.container_status")

CURSOR_NAME = "pelican_container_status"
BATCH = 500  # state changes read at a time
# Seconds between looks at the log: Pelican's Wings tells each change at once, and the Panel shows
# the status to users, so not activity's minute.
INTERVAL = 1.0


def status_path(uuid: str) -> str:
    return f"/api/remote/servers/{uuid}/container/status"


class ContainerStatusOutbox(Outbox):
    task_name = "pelican-container-status"
    failure = "telling the Panel of state changes failed; trying again at the next interval"

    def __init__(
        self, store: EventStore, client: PanelClient, chart: Callable[[], Statechart], interval: float = INTERVAL
    ):
        super().__init__(store, client, CURSOR_NAME, interval)
        self._chart = chart  # the chart in force, asked each time: it is adopted at start (engine.charts)

    async def send_pending(self) -> None:
        upto = self._store.last_position
        flt = OwnEvents(types=[StateChanged.type], upto_position=upto, node_id=self._store.node_id)
        while not self._stopping.is_set():
            events, next_after = await page(self._store.engine, flt, self.cursor.position, BATCH)
            # The last change of each server that a Panel sees as one: the states as the statechart's
            # `panel_status` says them (`installing` is `offline` to a Panel, which knows Wings' own).
            said = self._chart().panel_status
            latest = {ev.stream_id: ev for ev in events if said(ev.data["from_state"]) != said(ev.data["to_state"])}
            for uuid, ev in latest.items():
                body = {"data": {"previous_state": said(ev.data["from_state"]), "new_state": said(ev.data["to_state"])}}
                try:
                    await self._client.post_json(status_path(uuid), body)
                except PanelError as exc:
                    if not refuses_the_entries(exc) and exc.status != 404:
                        log.warning(
                            "the Panel did not take a state change; sent again at the next interval",
                            server=uuid,
                            status=exc.status,
                            reason=exc.reason,
                        )
                        return  # the cursor stays: those already sent go again (a status is idempotent)
                    log.warning(
                        "the Panel refused a state change; skipped", server=uuid, status=exc.status, reason=exc.reason
                    )
            await self.cursor.advance(events[-1].position if next_after is not None else upto)
            if next_after is None:
                return


def container_status_outbox(
    config: DaemonConfig, store: EventStore, chart: Callable[[], Statechart]
) -> ContainerStatusOutbox | None:
    """Only for a Pelican Panel: Pterodactyl's has no such route (it would answer 404 forever)."""
    if not config.remote or config.remote_flavor != "pelican":
        return None
    return ContainerStatusOutbox(store, PanelClient(config.remote, config.token_id, config.token), chart)
