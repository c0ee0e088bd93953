"""A server's timeline: the intervals it spent in each power state, and why each one ended.

Built with the daemon's fold (engine.servers.apply) over the stream, one interval at a time, so a
long history never sits in memory. A change by the process's exit happened when the daemon saw the
exit, which can be well before its commit (the store could not write for a while): intervals end
and begin there (engine.servers.fold.changed_at).

A change that belongs to a power operation is credited to whoever asked for the operation, read
from its power.requested (the event log's own account of who did what): a kill's exit is recorded
by the daemon that saw it, but the kill was the operator's, and each step of a restart (its stop,
exit, start and ready) says it was a restart. What recorded the change stays in `recorded_by`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.audit.describe import CAUSES
from wingman.engine.charts.log import chart_in_force
from wingman.engine.event_types import EventType
from wingman.engine.events import RecordedEvent
from wingman.engine.servers.fold import changed_at, new_view
from wingman.engine.servers.replay import UnknownStream, fold_step
from wingman.engine.store.points import iso
from wingman.engine.store.queries import stream_exists, stream_versions


@dataclass
class Interval:
    state: str
    start: datetime
    end: datetime | None  # None: the server is still in this state
    # the event that ended it: trigger, cause, actor and channel (whoever asked for its operation, else
    # what recorded it), action (its operation's), operation_id, recorded_by, version, position
    ended_by: dict[str, Any] | None

    def seconds(self, now: datetime | None = None) -> float:
        end = self.end or now or datetime.now(UTC)
        return max(0.0, (end - self.start).total_seconds())

    @property
    def why(self) -> str:
        e = self.ended_by
        if e is None:
            return "still in this state"
        if e.get("trigger") is None:
            return str(e["cause"]) + (f" (by {e['actor']})" if e.get("actor") else "")
        words = CAUSES.get(e["cause"], (e["cause"] or "").replace("_", " "))
        if e.get("action"):  # a step of an operation: whose operation, and which
            return f"{e['trigger']}: {words} ({e['action']} asked by {e['actor']})"
        return f"{e['trigger']}: {words}" + (f" (by {e['actor']})" if e.get("actor") else "")

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "state": self.state,
            "from": iso(self.start),
            "to": iso(self.end),
            "seconds": round(self.seconds(now), 6),
            "ongoing": self.end is None,
            "why_it_ended": self.why,
            "ended_by": self.ended_by,
        }


# Operations whose asker is kept for the changes they cause: those changes follow their request
# within seconds (a stop at most its timeout), so a window this long never drops one in use.
REMEMBERED_OPERATIONS = 256

Asker = dict[str, Any]  # the operation's action, actor and channel, from its power.requested


def _ending(ev: RecordedEvent, trigger: str | None, cause: str, asked: Asker | None = None) -> dict[str, Any]:
    recorded_by = {"actor": ev.metadata.get("actor"), "channel": ev.metadata.get("channel")}
    credit = asked or recorded_by
    return {
        "trigger": trigger,
        "cause": cause,
        "actor": credit["actor"],
        "channel": credit["channel"],
        "action": asked["action"] if asked else None,
        "operation_id": ev.data.get("operation_id") or ev.metadata.get("operation_id"),
        "recorded_by": recorded_by,
        "version": ev.version,
        "position": ev.position,
    }


async def timeline(engine: AsyncEngine, stream_id: str) -> AsyncIterator[Interval]:
    """The intervals in order; the last one is open unless the server was deleted.
    Raises UnknownStream for a server the log does not know, LogError when it cannot be replayed."""
    chart = await chart_in_force(engine)  # the log's timeline of charts (engine.charts.log)
    if not await stream_exists(engine, stream_id):
        raise UnknownStream(stream_id)
    view = new_view(stream_id, chart)
    start: datetime | None = None
    asked: OrderedDict[str, Asker] = OrderedDict()  # operation id -> who asked, the latest ones
    async for ev in stream_versions(engine, stream_id, 0):
        if ev.type == EventType.POWER_REQUESTED:
            asked[ev.data["operation_id"]] = {
                "action": ev.data.get("action"),
                "actor": ev.metadata.get("actor"),
                "channel": ev.metadata.get("channel"),
            }
            if len(asked) > REMEMBERED_OPERATIONS:
                asked.popitem(last=False)
        before, was_deleted = view.state, view.deleted
        fold_step(view, ev, chart)
        if start is None and not view.deleted:
            # The server exists from its first event (or re-registration); facts recorded after its
            # deletion (its files removed, from the background) do not bring it back.
            start = ev.recorded_at
        if start is None:  # deleted and not registered again: no interval to end
            continue
        if ev.type == EventType.STATE_CHANGED:
            moment = max(start, changed_at(view, ev))  # never before the interval it ends began
            ending = _ending(ev, ev.data["trigger"], ev.data["cause"], asked.get(ev.data.get("operation_id") or ""))
            yield Interval(before, start, moment, ending)
            start = moment
        elif view.deleted and not was_deleted:
            yield Interval(view.state, start, ev.recorded_at, _ending(ev, None, "the server was deleted"))
            start = None
    if start is not None:
        yield Interval(view.state, start, None, None)
