"""Point-in-time state: a server as the log made it at a position or a time.

The answer is the same fold the live daemon uses (engine.servers.apply), with the log's timeline
of charts (each transition judged by the chart in force when it was recorded), run over the
stream's events up to the point, starting from the latest usable snapshot before it (engine.servers.snapshot_cache)
instead of from the first event when there is one. Finished operations are dropped while folding:
a replay needs the operations still in flight, not the whole history, and this keeps snapshots small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.charts.log import chart_in_force
from wingman.engine.servers.fold import LogError, ServerView, apply, new_view
from wingman.engine.servers.operations import OUTCOME_TYPES, QUEUED, LoggedEvent
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.statechart import Statechart
from wingman.engine.store.lenient_rows import EventRow, is_intact, to_rows, to_rows_until
from wingman.engine.store.points import END, Point, iso
from wingman.engine.store.queries import PAGE, fold_stream, stream_exists
from wingman.engine.store.schema import events as E

# is_intact reads `data`, `metadata` and `recorded_at`, which an EventRow has as a RecordedEvent does;
# its annotation (engine/store/lenient_rows.py) names only the latter. Cast once, not per event.
_is_intact = cast(Callable[[LoggedEvent], str | None], is_intact)


class UnknownStream(LookupError):
    def __init__(self, stream_id: str):
        super().__init__(f"no events for server {stream_id} in the log")
        self.stream_id = stream_id


def fold_step(view: ServerView, ev: LoggedEvent, chart: Statechart) -> ServerView:
    """One event into the view, refusing rows that cannot be read (a replay never guesses).
    The error names the event as a RecordedEvent, whichever form it was read in (LogError's rule)."""
    problem = _is_intact(ev)
    if problem:
        raise LogError(ev, problem)
    try:
        apply(view, ev, chart)
    except LogError:
        raise
    except Exception as exc:  # noqa: BLE001 - a row whose data does not fit its type
        raise LogError(ev, f"its data does not fit a {ev.type} event ({type(exc).__name__}: {exc})") from None
    # Only an outcome finishes an operation: the other events leave nothing to drop.
    return view.prune() if ev.type in OUTCOME_TYPES else view


@dataclass
class PointInTime:
    server: str
    point: Point
    view: ServerView | None  # None: the server had no events yet at that point
    snapshot_version: int | None
    events_folded: int

    def as_dict(self) -> dict[str, Any]:
        v = self.view
        out: dict[str, Any] = {"server": self.server, "at": self.point.describe(), "exists": v is not None}
        if v is None:
            return out | {"state": None, "version": 0, "position": None}
        in_flight = None
        if v.operation_in_flight:
            op = v.operations.get(v.operation_in_flight)
            in_flight = op.as_dict() if op else {"id": v.operation_in_flight}
        out |= {
            "state": v.state,
            "suspended": v.suspended,
            "deleted": v.deleted,
            "configuration": v.definition,
            "operation_in_flight": in_flight,
            "queued_operations": [op.as_dict() for op in v.operations.values() if op.status == QUEUED],
            "last_transition": v.last_transition,
            "last_process": v.last_process,
            "last_exit": v.last_exit,
            "version": v.version,
            "position": v.position,
            "as_of": iso(v.updated_at),
            "replay": {"from_snapshot_version": self.snapshot_version, "events_folded": self.events_folded},
        }
        return out


async def state_at(
    engine: AsyncEngine,
    stream_id: str,
    point: Point = END,
    cache: SnapshotCache | None = None,
    chart: Statechart | None = None,
) -> PointInTime:
    """The server's state after every event of its stream at or before `point`.

    Raises UnknownStream when the log has no event of this server at all, and LogError when the
    log cannot be folded up to the point (verification says more). `chart`: the chart in force
    with its timeline (engine.charts.log); by default the log's."""
    if chart is None:
        chart = await cache.timeline() if cache is not None else await chart_in_force(engine)
    snap = await cache.best(stream_id, point.position, point.time) if cache is not None else None
    if snap is None and not await stream_exists(engine, stream_id):  # a checked snapshot proves it
        raise UnknownStream(stream_id)
    view = snap.view if snap else new_view(stream_id, chart)
    start = view.version
    pending: list[dict[str, Any]] = []
    # From a snapshot, the point is normally within one snapshot interval: one page that size
    # reads few rows past it (a page of PAGE rows would read and ship up to 1,000 for nothing;
    # a bound on position in the query would make SQLite walk the rest of the stream to check it).
    every = cache.every if cache is not None and cache.every > 0 else 0  # cache.due, without a call an event
    page = every + 1 if snap is not None and every else PAGE  # a snapshot came from the cache
    # Before a point, a page is decoded only up to it (the rows after it are not read into events);
    # a shorter page then ends the stream's read.
    bounded = point != END
    convert = to_rows_until(point.includes) if bounded else to_rows

    def take(events: list[EventRow]) -> None:  # on the reader's thread (see fold_stream): the view is this call's own
        for ev in events:
            if bounded and isinstance(ev.recorded_at, str):  # unreadable: where it falls cannot be told
                raise LogError(ev, _is_intact(ev) or "its time is unreadable")
            fold_step(view, ev, chart)
            if every and view.version % every == 0 and cache is not None:  # `every`: there is a cache
                pending.append(cache.row(view, ev.hash))

    await fold_stream(engine, stream_id, view.version, page, convert, take)
    folded = view.version - start  # each event folded moves the version on by exactly one
    if pending and cache is not None:
        await cache.save(pending)
    return PointInTime(stream_id, point, view if view.version > 0 else None, snap.version if snap else None, folded)


async def streams(engine: AsyncEngine, at_least: int = 0) -> list[str]:
    """Every stream id in the log (with `at_least`, only streams of at least that many events)."""
    q = select(E.c.stream_id).group_by(E.c.stream_id).order_by(E.c.stream_id)
    if at_least > 1:
        q = q.having(func.max(E.c.version) >= at_least)
    async with engine.connect() as conn:
        return [r[0] for r in await conn.execute(q)]


async def build_snapshots(engine: AsyncEngine, cache: SnapshotCache, stream_id: str | None = None) -> int:
    """Fold every stream (or one) to its end, saving snapshots on the way; returns events folded.
    Useful after a migration or on a fresh copy of a database; never needed for correctness.
    Streams shorter than one snapshot interval have none to make and are not read."""
    total = 0
    for sid in [stream_id] if stream_id else await streams(engine, cache.every):
        total += (await state_at(engine, sid, END, cache)).events_folded
    return total
