"""Activity back to the Panel, none lost: an outbox that is a projection of the log.

Wings keeps activity in a table of its own and deletes what the Panel took. Here the entries are
the log's own events (engine.remote.activity_entries), so nothing is written twice and nothing can
be recorded in one place but not the other; what the Panel has accepted is one durable position in
the log (engine.remote.activity_cursor). Every `system.activity_send_interval` seconds the outbox
sends what lies after that position, `system.activity_send_count` entries a batch, batch after batch
until the backlog is empty (the Panel's answers pace it), and moves the cursor past each batch the
Panel accepted. So:

- The Panel down, a daemon restart or a SIGKILL lose nothing: the events are in the log, and the
  cursor has not moved past them.
- A batch the Panel accepted is not sent again: the cursor is committed as soon as the Panel's
  answer arrives. The one window left is a daemon killed between that answer and that commit
  (a few milliseconds): then the batch goes again. The Panel's endpoint has no key to tell a
  repeat, so that window cannot be closed from this side.
- A 4xx that says "this batch is wrong" (400, 413, 422 and any other not listed in RETRY_LATER)
  does not wedge the queue: the batch is split in halves and each half sent again, down to single
  entries; an entry the Panel refuses on its own is set aside, recorded as a
  `panel.activity_refused` event in its server's stream (what, the status, the Panel's words),
  and the queue goes on behind it. A 4xx that says nothing about the batch (401/403: the node's
  credentials; 404: a Panel without the route; 408, 429...), a 5xx, or no answer at all is retried
  at the next interval, for as long as it takes: those entries are not the Panel's to refuse.
"""

from __future__ import annotations

import asyncio

import structlog

from wingman.engine.config import DaemonConfig
from wingman.engine.event_types import Cause
from wingman.engine.events import ActivityRefused, Metadata, NewEvent
from wingman.engine.remote.activity_entries import Entry, pending
from wingman.engine.remote.client import PanelClient, PanelError
from wingman.engine.remote.outbox import Outbox
from wingman.engine.store.event_store import EventStore

log = structlog.get_logger("wingman.activity")

ACTIVITY_PATH = "/api/remote/activity"
CURSOR_NAME = "panel_activity"
# Refusals that say nothing about the entries sent: retried as they are, never split or set aside.
RETRY_LATER = frozenset({401, 403, 404, 405, 407, 408, 409, 423, 425, 429})
REFUSED = Metadata(actor="daemon", channel="internal", cause=Cause.PANEL_REFUSED_ACTIVITY)


def refuses_the_entries(exc: PanelError) -> bool:
    """The Panel answered that these entries are wrong (as opposed to: not now, not you)."""
    return exc.status is not None and 400 <= exc.status < 500 and exc.status not in RETRY_LATER


class ActivityOutbox(Outbox):
    task_name = "panel-activity-outbox"
    failure = "sending activity to the Panel failed; trying again at the next interval"

    def __init__(self, store: EventStore, client: PanelClient, interval: float, count: int):
        super().__init__(store, client, CURSOR_NAME, interval)
        self.count = count
        self.failing_since: float | None = None  # when the Panel last stopped taking batches

    async def send_pending(self) -> int:
        """Send everything after the cursor, batch after batch; the entries the Panel accepted."""
        sent = 0
        while True:
            entries, covers = await pending(
                self._store.engine, self.cursor.position, self._store.last_position, self.count, self._store.node_id
            )
            if not entries:
                await self.cursor.advance(covers)  # past events that were not activity: not read again
                return sent
            handled, accepted = await self._deliver(entries)
            if handled:
                # A batch handled in full covers the events between its entries too.
                await self.cursor.advance(covers if handled == len(entries) else entries[handled - 1].position)
                sent += accepted
            if handled < len(entries) or self._stopping.is_set():
                return sent  # the Panel said "not now": the rest waits for the next interval
            if self.failing_since is not None:
                log.info("the Panel takes activity again", entries=accepted)
                self.failing_since = None

    async def _deliver(self, entries: list[Entry]) -> tuple[int, int]:
        """Send `entries`; (how many of the first were dealt with, accepted or set aside; how
        many of those the Panel accepted). Halves are sent in order, so what was dealt with is
        always a prefix, and the cursor can move past exactly that."""
        try:
            await self._client.post_json(ACTIVITY_PATH, {"data": [e.body for e in entries]})
            return len(entries), len(entries)
        except PanelError as exc:
            if not refuses_the_entries(exc):
                self._not_now(exc, len(entries))
                return 0, 0
            if len(entries) == 1:
                await self._set_aside(entries[0], exc)
                return 1, 0
        half = len(entries) // 2
        first_done, first_accepted = await self._deliver(entries[:half])
        if first_done < half:
            return first_done, first_accepted
        second_done, second_accepted = await self._deliver(entries[half:])
        return half + second_done, first_accepted + second_accepted

    def _not_now(self, exc: PanelError, waiting: int) -> None:
        first = self.failing_since is None
        if first:
            self.failing_since = asyncio.get_running_loop().time()
        (log.warning if first else log.info)(
            "the Panel did not take activity; kept, and sent again at the next interval",
            status=exc.status,
            reason=exc.reason,
            entries=waiting,
            retry_in_seconds=self.interval,
        )

    async def _set_aside(self, entry: Entry, exc: PanelError) -> None:
        log.warning(
            "the Panel refused an activity entry on its own; set aside, the queue goes on",
            server=entry.stream_id,
            activity=entry.activity,
            status=exc.status,
            reason=exc.reason,
        )
        record = ActivityRefused(
            source_event_id=entry.event_id, activity=entry.activity, status=exc.status or 0, reason=exc.reason
        )
        await self._store.append(entry.stream_id, [NewEvent.of(record, REFUSED)])


def activity_outbox(config: DaemonConfig, store: EventStore) -> ActivityOutbox | None:
    """The node's outbox to its Panel, or None for a standalone node (no `remote`): its activity
    stays in the log, and is sent from where the cursor stands once a Panel is configured."""
    if not config.remote:
        return None
    client = PanelClient(config.remote, config.token_id, config.token)
    return ActivityOutbox(store, client, config.system.activity_send_interval, config.system.activity_send_count)
