"""Following the log across the switch from stored to live events, on a real SQLite store, while
other tasks append as fast as they can: no gap, no duplicate, in order, whether the follower keeps
up, falls behind its tail's capacity, or disconnects and resumes from its last position."""

from __future__ import annotations

import asyncio
import random
from contextlib import aclosing

from tests.support.daemon import opened_store
from wingman.engine.events import NewEvent
from wingman.engine.live.feed import EventFeed
from wingman.engine.live.follow import follow
from wingman.engine.store.queries import EventFilter

STREAMS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)]


def event(kind: str, i: int) -> NewEvent:
    return NewEvent(type=kind, data={"i": i}, metadata={"actor": "test"})


async def append_fast(store, stream: str, count: int, batch: int = 7) -> None:
    """One appender: as fast as the store takes it (alternating two event types)."""
    for start in range(0, count, batch):
        await store.append(
            stream,
            [
                event("test.even" if (start + k) % 2 == 0 else "test.odd", start + k)
                for k in range(min(batch, count - start))
            ],
        )


async def collect(feed, db, flt, after, want, capacity, cut_every=None) -> list[int]:
    """Follow until `want` positions were seen; with `cut_every`, disconnect after a random number of
    batches each time and resume from the last position received (as a client with Last-Event-ID)."""
    seen: list[int] = []
    rng = random.Random(7)
    while len(seen) < want:
        budget = rng.randint(1, cut_every) if cut_every else None
        async with aclosing(follow(feed, db, flt, seen[-1] if seen else after, capacity, idle=5)) as batches:
            async for batch in batches:
                seen += [ev.position for ev in batch]
                if len(seen) >= want:
                    break
                if budget is not None:
                    budget -= 1
                    if budget <= 0:
                        break  # "disconnect"
    return seen


async def run_case(tmp_path, capacity: int, cut_every: int | None, preload: int = 300, live: int = 600):
    async with opened_store(f"sqlite+aiosqlite:///{tmp_path}/follow.db") as store:
        feed = EventFeed(store)
        feed.start()
        for stream in STREAMS:
            await append_fast(store, stream, preload // len(STREAMS))
        total = preload + live
        follower = asyncio.create_task(collect(feed, store.engine, EventFilter(), 0, total, capacity, cut_every))
        await asyncio.gather(*(append_fast(store, s, live // len(STREAMS), batch=3) for s in STREAMS))
        seen = await asyncio.wait_for(follower, 120)
        feed.stop()
        assert store.last_position == total
        return seen, total


async def test_a_follower_that_keeps_up_sees_every_event_once_in_order(tmp_path):
    seen, total = await run_case(tmp_path, capacity=10_000, cut_every=None)
    assert seen == list(range(1, total + 1))


async def test_a_follower_behind_its_tail_goes_back_to_the_log_and_misses_nothing(tmp_path):
    seen, total = await run_case(tmp_path, capacity=4, cut_every=None)
    assert seen == list(range(1, total + 1))


async def test_a_follower_that_disconnects_and_resumes_misses_nothing_and_repeats_nothing(tmp_path):
    seen, total = await run_case(tmp_path, capacity=16, cut_every=3)
    assert seen == list(range(1, total + 1))


async def test_filters_hold_on_both_sides_of_the_switch(tmp_path):
    async with opened_store(f"sqlite+aiosqlite:///{tmp_path}/filter.db") as store:
        feed = EventFeed(store)
        feed.start()
        await append_fast(store, STREAMS[0], 40)
        await append_fast(store, STREAMS[1], 40)
        flt = EventFilter(stream_id=STREAMS[1], types=["test.even"])
        follower = asyncio.create_task(collect(feed, store.engine, flt, 0, 40, capacity=8, cut_every=2))
        await asyncio.gather(append_fast(store, STREAMS[0], 40), append_fast(store, STREAMS[1], 40))
        seen = await asyncio.wait_for(follower, 60)
        everything = await store.read_all()
        expected = [e.position for e in everything if e.stream_id == STREAMS[1] and e.type == "test.even"]
        assert seen == expected and len(expected) == 40
        # The in-memory filter and the database's agree on every event.
        assert [e.position for e in everything if flt.matches(e)] == expected
        prefix = EventFilter(types=["test.*"])
        assert all(prefix.matches(e) for e in everything)
        feed.stop()


async def test_an_idle_follower_is_given_heartbeats(tmp_path):
    async with opened_store(f"sqlite+aiosqlite:///{tmp_path}/idle.db") as store:
        feed = EventFeed(store)
        feed.start()
        async with aclosing(follow(feed, store.engine, EventFilter(), 0, 10, idle=0.05)) as batches:
            assert await asyncio.wait_for(anext(batches), 30) == []
        feed.stop()
