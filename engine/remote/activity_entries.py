"""The Panel's activity entries, as a projection of the log: which events are activity, and the
entry each one becomes (`POST /api/remote/activity`, as Wings' `internal/models/activity.go`
spells it: event, user, server, metadata, ip, timestamp).

What is activity, as Wings records it (`router/websocket/websocket.go`):
- `power.requested` over the websocket: `server:power.<action>`, metadata `{}`;
- `console.command` over the websocket: `server:console.command`, metadata `{"command": ...}`.
The user is the JWT's `user_uuid` (the session's metadata `actor`), the IP the client's.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from datetime import UTC
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.events import WEBSOCKET_CHANNEL, ConsoleCommand, PowerRequested, RecordedEvent
from wingman.engine.store.ownership import OwnEvents
from wingman.engine.store.queries import page

POWER_PREFIX = "server:power."
CONSOLE_COMMAND = "server:console.command"
SOURCE_TYPES: list[str] = [PowerRequested.type, ConsoleCommand.type]


class Body(TypedDict):
    """An entry as the Panel takes it (Wings' internal/models/activity.go)."""

    event: str
    user: str | None
    server: str
    metadata: dict[str, object]
    ip: str | None
    timestamp: str


@dataclass(frozen=True)
class Entry:
    position: int  # of the event it was made from
    stream_id: str
    event_id: str
    body: Body

    @property
    def activity(self) -> str:
        return self.body["event"]


def entry_of(ev: RecordedEvent) -> Entry | None:
    """The activity entry an event makes, or None when it is not activity."""
    meta = ev.metadata if isinstance(ev.metadata, dict) else {}
    if meta.get("channel") != WEBSOCKET_CHANNEL:
        return None  # the Panel records what it asks of the node itself
    details: dict[str, object]
    if ev.type == PowerRequested.type:
        activity, details = POWER_PREFIX + str(ev.data.get("action")), {}
    elif ev.type == ConsoleCommand.type:
        activity, details = CONSOLE_COMMAND, {"command": ev.data.get("command")}
    else:
        return None
    return Entry(
        ev.position,
        ev.stream_id,
        ev.event_id,
        {
            "event": activity,
            "user": _user_uuid(meta.get("actor")),
            "server": ev.stream_id,
            "metadata": details,
            "ip": meta.get("source_ip") or None,  # the Panel takes a valid IP or null, never ""
            "timestamp": ev.recorded_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        },
    )


def _user_uuid(actor: object) -> str | None:
    """The Panel keys users by uuid; a token of an older Panel names a numeric `user_id`, which
    would have the whole batch refused: such an entry goes as the system's (null), as Wings sends
    an entry without a user."""
    try:
        return str(uuidlib.UUID(str(actor)))
    except ValueError:
        return None


async def pending(
    engine: AsyncEngine, after: int, upto: int, count: int, node_id: str | None = None
) -> tuple[list[Entry], int]:
    """Up to `count` entries made from the events after position `after` (and at most `upto`, a
    position every event below has been committed), and the position this batch covers: once
    the batch is accepted, nothing at or before it needs sending again. With `node_id`, only that
    node's own events (a fleet's shared database: each node tells its Panel of its own servers)."""
    flt = OwnEvents(types=SOURCE_TYPES, upto_position=upto, node_id=node_id)
    entries: list[Entry] = []
    while len(entries) < count:
        events, next_after = await page(engine, flt, after, count)
        for ev in events:
            entry = entry_of(ev)
            if entry is not None:
                entries.append(entry)
                if len(entries) == count:
                    return entries, entry.position
        if next_after is None:
            break
        after = next_after
    return entries, upto
