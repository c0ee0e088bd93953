"""A subscriber, or a bug, cannot wedge the event store: every caller gets its answer and the
writer goes on. `StoreUnavailable` means only that the database could not commit, so nothing else
is retried for ever."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.daemon import definition, opened_store
from wingman.engine.events import Metadata, NewEvent, ServerSuspended
from wingman.engine.power.journal import Journal
from wingman.engine.store.database import sqlite_url
from wingman.engine.store.event_store import StoreRefused


@pytest.fixture
async def store(tmp_path):
    async with opened_store(sqlite_url(tmp_path)) as s:
        yield s


def ev(actor: str = "test") -> NewEvent:
    return NewEvent.of(ServerSuspended(), Metadata(actor=actor))


async def test_a_subscriber_that_raises_is_isolated(store, caplog):
    calls = []

    def flaky(events):
        calls.append(len(events))
        if len(calls) == 1:
            raise RuntimeError("subscriber bug")

    seen = []
    store.subscribe(flaky)
    store.subscribe(lambda events: seen.extend(e.position for e in events))  # a healthy one after it
    before = await store.append("a", [ev("before")])
    during = await asyncio.gather(*(store.append("a", [ev(f"during{i}")]) for i in range(20)))
    after = await store.append("a", [ev("after")])
    assert len(calls) >= 2, "the failing subscriber is still called for later groups"
    stored = [e.metadata["actor"] for e in await store.read_stream("a")]
    assert stored == ["before", *[f"during{i}" for i in range(20)], "after"]
    assert [e.version for e in [*before, *[d[0] for d in during], *after]] == list(range(1, 23))
    assert seen == [e.position for e in await store.read_stream("a")], "the healthy subscriber saw every event"


async def test_a_group_the_writer_cannot_encode_fails_alone(store):
    """A value that is not JSON (a bug upstream) fails that append with StoreRefused; the
    appends around it are committed and the writer keeps writing."""
    bad = NewEvent(type="server.suspended", data={"oops": {1, 2}}, metadata={})
    results = await asyncio.gather(
        store.append("a", [ev("one")]), store.append("b", [bad]), store.append("a", [ev("two")]), return_exceptions=True
    )
    assert [type(r).__name__ for r in results] == ["list", "StoreRefused", "list"]
    assert (await store.append("a", [ev("three")]))[0].metadata["actor"] == "three"
    assert "b" not in {e.stream_id for e in await store.read_all()}


async def test_a_refusing_database_is_not_retried_for_ever(store, tmp_path):
    """The power engine retries appends while the store is *unavailable* (disk full); a refusal
    reaches it at once instead of looping."""
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql(
            "CREATE TRIGGER no_more BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    from wingman.engine.servers.registry import ServerRegistry

    journal = Journal(store, ServerRegistry(store))
    with pytest.raises(StoreRefused, match="refused"):
        await asyncio.wait_for(journal.record("a", ServerSuspended(), meta=Metadata()), 30)


async def test_the_daemon_works_on_with_a_failing_subscriber(engine_harness):
    """A broken subscriber beside the daemon's own: power operations still get their outcomes."""
    server = definition()
    uuid = server["settings"]["uuid"]
    async with engine_harness([server]) as h:
        failures = []

        def broken(events):
            failures.append(events[0].position)
            raise ValueError("a broken subscriber")

        h.daemon.store.subscribe(broken)
        start = await h.outcome(await h.act(uuid, "start"))
        stop = await h.outcome(await h.act(uuid, "stop"))
        assert (start.status, stop.status) == ("succeeded", "succeeded")
        assert h.state(uuid) == "offline" and failures
