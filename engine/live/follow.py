"""Follow the log: the stored events after a position, then live ones as they commit, with no gap
and no duplicate across the switch.

How the switch is exact: a `Tail` is attached first, in one synchronous step that also notes the
store's last position `start`. Every event up to `start` was committed before the tail existed,
so it is in the database; every event after `start` is handed to the tail. The follower reads the
log up to `start`, then drains the tail. Positions are in commit order (one writer), so a cursor
on the last position read is enough to skip what was already sent. When the follower falls too far
behind and the tail overflows, it simply goes back to reading the log from its cursor with a fresh
tail: a slow reader costs memory only up to the tail's capacity and never slows the writer.

The tail hears this node's own commits only. In a fleet's shared database (docs/fleet.md) a reader
of other nodes' events (`poll`) follows the log itself instead: it reads the log after its cursor
every `poll` seconds. Positions there are assigned in commit order across nodes (the log's lock),
so a cursor on the last position read skips nothing either.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.events import RecordedEvent
from wingman.engine.live.feed import EventFeed, TailOverflowed
from wingman.engine.store.queries import EventFilter, page

PAGE = 500  # events per read of the log while catching up


async def follow(
    feed: EventFeed,
    db: AsyncEngine,
    flt: EventFilter,
    after: int = 0,
    capacity: int = 10_000,
    idle: float | None = None,
    poll: float | None = None,
) -> AsyncGenerator[list[RecordedEvent], None]:
    """Yield every matching event after position `after`, in batches, in position order, forever.
    Yields an empty batch when `idle` seconds passed without an event (the caller's chance to
    send a heartbeat). A batch is a page of the log or what the tail held: one write for many.
    With `poll`, the log is read every `poll` seconds instead of following this node's commits."""
    if poll is not None:
        async for polled in _poll(db, flt, after, idle, poll):
            yield polled
        return
    cursor = after  # every matching event up to here has been yielded
    while True:
        tail = feed.tail(capacity, flt)
        try:
            upto = tail.start
            while cursor < upto:
                events, more = await page(db, replace(flt, upto_position=upto), cursor, PAGE)
                if events:
                    cursor = events[-1].position
                    yield events
                if more is None:
                    cursor = max(cursor, upto)
            while True:
                batch = await tail.next_batch(idle)
                if batch is None:
                    yield []
                    continue
                fresh = [ev for ev in batch if ev.position > cursor]
                if fresh:
                    cursor = fresh[-1].position
                    yield fresh
        except TailOverflowed:
            continue  # read the log again from the cursor, with a new tail
        finally:
            tail.close()


async def _poll(
    db: AsyncEngine, flt: EventFilter, after: int, idle: float | None, every: float
) -> AsyncGenerator[list[RecordedEvent], None]:
    cursor, quiet = after, 0.0
    while True:
        events, more = await page(db, flt, cursor, PAGE)
        if events:
            cursor, quiet = events[-1].position, 0.0
            yield events
        if more is not None:
            cursor = max(cursor, more)
            continue
        await asyncio.sleep(every)
        quiet += every
        if idle is not None and quiet >= idle:
            quiet = 0.0
            yield []
