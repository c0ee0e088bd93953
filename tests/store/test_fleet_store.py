"""Several nodes on one database, at the store (docs/fleet.md): the node on every event, a stream
that belongs to one node, and a log that a tail reader follows without a gap while two processes
write it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from tests.support.daemon import REPO
from tests.support.fleet import TailReader
from wingman.engine.events import Metadata, NewEvent, ServerSuspended
from wingman.engine.store.database import create_engine, sqlite_url, upgrade
from wingman.engine.store.event_store import EventStore, StoreRefused
from wingman.engine.store.ownership import hand_over, owners
from wingman.engine.store.schema import events as E


def ev() -> NewEvent:
    return NewEvent.of(ServerSuspended(), Metadata(actor="test"))


async def _store(url: str, node_id: str | None) -> EventStore:
    engine = create_engine(url)
    await upgrade(engine)
    store = EventStore(engine, node_id=node_id)
    await store.open()
    return store


async def _close(*stores: EventStore) -> None:
    for store in stores:
        await store.close()
        await store.engine.dispose()


async def _nodes_by_stream(url: str) -> dict[str, set[str | None]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(E.c.stream_id, E.c.node_id))).all()
    finally:
        await engine.dispose()
    found: dict[str, set[str | None]] = {}
    for stream, node in rows:
        found.setdefault(stream, set()).add(node)
    return found


async def test_each_event_on_sqlite_names_the_node_that_wrote_it(tmp_path):
    url = sqlite_url(tmp_path)
    store = await _store(url, "laptop")
    await store.append("s", [ev(), ev()])
    await _close(store)
    assert await _nodes_by_stream(url) == {"s": {"laptop"}}


@pytest.mark.postgres
async def test_each_event_names_its_node_and_a_node_cannot_write_to_another_nodes_server(pg_url):
    a = await _store(pg_url, "node-a")
    await a.append("server-a", [ev()])
    b = await _store(pg_url, "node-b")  # opened after: it knows server-a's version, and still may not write
    try:
        await b.append("server-b", [ev()])
        # One group holds both appends: the one to node-a's server is refused, the other commits.
        refused, kept = await asyncio.gather(
            b.append("server-a", [ev()]), b.append("server-b", [ev()]), return_exceptions=True
        )
        assert isinstance(refused, StoreRefused)
        assert "server-a belongs to node node-a" in str(refused) and "node-b" in str(refused)
        assert [e.version for e in kept] == [2]
        await a.append("server-a", [ev()])  # its owner still writes
        assert await _nodes_by_stream(pg_url) == {"server-a": {"node-a"}, "server-b": {"node-b"}}
        assert await owners(a.engine) == {"server-a": "node-a", "server-b": "node-b"}
    finally:
        await _close(a, b)


@pytest.mark.postgres
async def test_a_stream_handed_over_is_written_by_its_new_node_only(pg_url):
    a = await _store(pg_url, "node-a")
    await a.append("moving", [ev()])
    await _close(a)  # a handover is done with the old node stopped
    b = await _store(pg_url, "node-b")
    try:
        with pytest.raises(StoreRefused, match="belongs to node node-a"):
            await b.append("moving", [ev()])
        assert await hand_over(b.engine, "moving", "node-a", "node-b")
        assert not await hand_over(b.engine, "moving", "node-a", "node-c")  # node-a has it no more
        assert [e.version for e in await b.append("moving", [ev()])] == [2]
    finally:
        await _close(b)
    a = await _store(pg_url, "node-a")
    try:
        with pytest.raises(StoreRefused, match="belongs to node node-b"):
            await a.append("moving", [ev()])
    finally:
        await _close(a)


@pytest.mark.postgres
async def test_an_old_stream_is_claimed_by_the_first_node_that_writes_it(pg_url):
    """Events from before node ids (NULL) belong to no one: the first node to write claims them."""
    anonymous = await _store(pg_url, None)
    await anonymous.append("old", [ev()])
    await _close(anonymous)
    a, b = await _store(pg_url, "node-a"), await _store(pg_url, "node-b")
    try:
        await a.append("old", [ev()])
        with pytest.raises(StoreRefused, match="belongs to node node-a"):
            await b.append("old", [ev()])
        assert await _nodes_by_stream(pg_url) == {"old": {None, "node-a"}}
    finally:
        await _close(a, b)


# A writer process: `tasks` appenders, each appending one event at a time to a stream of its own
# until `count` events in all are written (many small groups, racing the other process's).
WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from wingman.engine.events import Metadata, NewEvent, ServerSuspended
    from wingman.engine.store.database import create_engine
    from wingman.engine.store.event_store import EventStore

    async def main(url, node, count, tasks):
        engine = create_engine(url)
        store = EventStore(engine, node_id=node)
        await store.open()
        async def one(n):
            for _ in range(count // tasks):
                await store.append(f"{node}-{n}", [NewEvent.of(ServerSuspended(), Metadata(actor=node))])
        await asyncio.gather(*(one(n) for n in range(tasks)))
        await store.close()
        await engine.dispose()
        print("wrote", count)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    """
)


@pytest.mark.postgres
async def test_a_tail_reader_sees_every_event_once_in_order_while_two_processes_write(pg_url):
    await _close(await _store(pg_url, None))  # the schema, before the writers and the reader start
    reader = TailReader(pg_url)
    reader.start()
    count = 1200
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, pg_url, node, str(count), "12"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in ("node-a", "node-b")
    ]
    results = [await asyncio.to_thread(w.communicate, timeout=240) for w in writers]
    reader.done.set()
    await asyncio.to_thread(reader.join, 60)
    assert [w.returncode for w in writers] == [0, 0], [r[1][-3000:] for r in results]
    assert reader.error is None
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as conn:
            log = [(r[0], r[1]) for r in await conn.execute(select(E.c.position, E.c.event_id).order_by(E.c.position))]
    finally:
        await engine.dispose()
    assert len(log) == 2 * count
    assert [p for p, _ in log] == list(range(1, 2 * count + 1))  # gapless
    assert reader.reads > 10  # it followed the writes, not just read the end
    assert reader.seen == log  # every event, once, in order: none committed behind the reader's back
    assert await _nodes_by_stream(pg_url) == {f"{node}-{n}": {node} for node in ("node-a", "node-b") for n in range(12)}


async def _events_before_node_ids(url: str) -> None:
    """A log from before migration 0007: one event written at revision 0006."""
    engine = create_engine(url)
    try:
        await upgrade(engine, "0006_outbox_cursors")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO events (position, stream_id, version, event_id, type, data, metadata, recorded_at,"
                    " prev_hash, hash) VALUES (1, 'old', 1, 'e1', 'server.suspended', '{}', '{}', :at, :h, :h)"
                ),
                {"at": datetime.now(UTC), "h": "0" * 64},
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_the_migration_leaves_the_events_from_before_without_a_node(database, tmp_path, request):
    url = sqlite_url(tmp_path) if database == "sqlite" else request.getfixturevalue("pg_url")
    await _events_before_node_ids(url)
    store = await _store(url, "node-a")  # migrates to the head
    try:
        [old] = await store.read_stream("old")
        assert old.version == 1 and old.event_id == "e1"
        await store.append("old", [ev()])
    finally:
        await _close(store)
    assert await _nodes_by_stream(url) == {"old": {None, "node-a"}}
