"""A server's timeline: the intervals it spent in each power state, and why each one ended.

Built with the daemon's fold (engine.servers.apply) over the stream, one interval at a time, so a
long history never sits in memory. A change by the process's exit happened when the daemon saw the
exit, which can be well before its commit (the store could not write for a while): intervals end
and begin there (engine.servers.fold.changed_at).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.audit.describe import CAUSES
from wingman.engine.event_types import EventType
from wingman.engine.events import RecordedEvent
from wingman.engine.servers.fold import changed_at, new_view
from wingman.engine.servers.replay import UnknownStream, fold_step
from wingman.engine.statechart import load_statechart
from wingman.engine.store.points import iso
from wingman.engine.store.queries import stream_exists, stream_versions


@dataclass
class Interval:
    state: str
    start: datetime
    end: datetime | None  # None: the server is still in this state
    ended_by: dict[str, Any] | None  # the event that ended it: trigger, cause, actor, operation, ...

    def seconds(self, now: datetime | None = None) -> float:
        end = self.end or now or datetime.now(UTC)
        return max(0.0, (end - self.start).total_seconds())

    @property
    def why(self) -> str:
        e = self.ended_by
        if e is None:
            return "still in this state"
        if e.get("trigger") is None:
            return e["cause"]
        words = CAUSES.get(e["cause"], (e["cause"] or "").replace("_", " "))
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


def _ending(ev: RecordedEvent, trigger: str | None, cause: str) -> dict[str, Any]:
    return {
        "trigger": trigger,
        "cause": cause,
        "actor": ev.metadata.get("actor"),
        "channel": ev.metadata.get("channel"),
        "operation_id": ev.data.get("operation_id"),
        "version": ev.version,
        "position": ev.position,
    }


async def timeline(engine: AsyncEngine, stream_id: str) -> AsyncIterator[Interval]:
    """The intervals in order; the last one is open unless the server was deleted.
    Raises UnknownStream for a server the log does not know, LogError when it cannot be replayed."""
    chart = load_statechart()
    if not await stream_exists(engine, stream_id):
        raise UnknownStream(stream_id)
    view = new_view(stream_id, chart)
    start: datetime | None = None
    async for ev in stream_versions(engine, stream_id, 0):
        before, was_deleted = view.state, view.deleted
        fold_step(view, ev, chart)
        if start is None and not view.deleted:
            # The server exists from its first event (or re-registration); facts recorded after its
            # deletion (its files removed, from the background) do not bring it back.
            start = ev.recorded_at
        if ev.type == EventType.STATE_CHANGED:
            moment = max(start, changed_at(view, ev))  # never before the interval it ends began
            yield Interval(before, start, moment, _ending(ev, ev.data["trigger"], ev.data["cause"]))
            start = moment
        elif view.deleted and not was_deleted:
            yield Interval(view.state, start, ev.recorded_at, _ending(ev, None, "the server was deleted"))
            start = None
    if start is not None:
        yield Interval(view.state, start, None, None)
