"""What every backend of the event store must do (engine/store/backends/), run on each against the
real database: a SQLite file, and a throwaway PostgreSQL cluster (tests/support/postgres.py; under CI a
missing PostgreSQL fails these tests, it never skips them).

Append; expected versions; group commit; the hash chain, and a tampered row found; reads after a
position; subscribers; and positions without gaps as readers see them, while many appenders and a
second writer of the same database commit. A new backend passes this file first.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.support.daemon import opened_store
from wingman.engine.events import Metadata, NewEvent, RecordedEvent, ServerSuspended, ServerUnsuspended
from wingman.engine.store.backends import backend_for, backend_of
from wingman.engine.store.database import sqlite_url
from wingman.engine.store.event_store import ANY_VERSION, NO_STREAM, ConcurrencyError, EventStore, StoreRefused
from wingman.engine.store.hashing import GENESIS, event_hash
from wingman.engine.store.lenient_rows import to_events
from wingman.engine.store.queries import EventFilter, iterate, page, stream_pages
from wingman.engine.store.schema import events as events_table


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    """A fresh database on each backend: a SQLite file in tmp, a new database in the session's cluster."""
    return sqlite_url(tmp_path) if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
async def store(url):
    async with opened_store(url) as s:
        yield s


def ev(kind=ServerSuspended, **meta) -> NewEvent:
    return NewEvent.of(kind(), Metadata(**meta))


def chain_breaks(events: list[RecordedEvent]) -> list[int]:
    """Positions whose hash does not cover the row as read, or does not follow its stream's last."""
    last: dict[str, str] = {}
    broken = []
    for e in events:
        expected = event_hash(
            stream_id=e.stream_id,
            version=e.version,
            event_id=e.event_id,
            type=e.type,
            data=e.data,
            metadata=e.metadata,
            recorded_at=e.recorded_at,
            prev_hash=e.prev_hash,
        )
        if e.prev_hash != last.get(e.stream_id, GENESIS) or e.hash != expected:
            broken.append(e.position)
        last[e.stream_id] = e.hash
    return broken


# -- the backend is chosen from the URL, in one place -------------------------------------------


def test_the_backend_is_chosen_from_the_url():
    assert backend_for("sqlite+aiosqlite:////var/lib/wingman/wingman.db").name == "sqlite"
    assert backend_for("postgresql+asyncpg://wingman@db.example/wingman").name == "postgresql"
    with pytest.raises(ValueError, match="SQLite or PostgreSQL, not 'mysql'"):
        backend_for("mysql+aiomysql://wingman@db.example/wingman")


def test_no_module_of_the_engine_asks_which_database_it_runs_on():
    """The differences live in engine/store/backends/: nothing else reads the dialect."""
    engine_dir = Path(__file__).resolve().parents[2] / "engine"
    backends = engine_dir / "store" / "backends"
    asking = [
        str(p.relative_to(engine_dir))
        for p in engine_dir.rglob("*.py")
        if backends not in p.parents and "dialect" in p.read_text()
    ]
    assert asking == []


async def test_the_store_runs_on_the_backend_of_its_url(store, url):
    assert backend_of(store.engine) is backend_for(url) is store.backend


# -- append ---------------------------------------------------------------------------------------


async def test_appended_events_read_back_exactly_as_returned(store):
    data = {"motd": "héllo ✓ 😀", "n": 3, "nested": {"b": [1, None, True], "a": "x"}}
    a = await store.append("a", [ev(), ev(ServerUnsuspended)], expected_version=NO_STREAM)
    b = await store.append("b", [NewEvent(type="server.registered", data=data, metadata={"actor": "ü"})])
    a += await store.append("a", [ev(actor="again")])
    assert [(e.stream_id, e.version, e.position) for e in a + b] == [("a", 1, 1), ("a", 2, 2), ("a", 3, 4), ("b", 1, 3)]
    assert (b[0].data, b[0].metadata) == (data, {"actor": "ü"})
    assert await store.read_stream("a") == a
    assert await store.read_stream("b") == b
    assert await store.read_all() == sorted(a + b, key=lambda e: e.position)
    assert [e async for e in iterate(store.engine)] == sorted(a + b, key=lambda e: e.position)
    assert (store.version("a"), store.head("b"), store.stream_versions()) == (3, (1, b[0].hash), {"a": 3, "b": 1})
    assert await store.size() == (4, 2)


async def test_a_reopened_store_continues_every_stream(store):
    first = await store.append("a", [ev(), ev()])
    again = EventStore(store.engine)
    await again.open()
    try:
        assert (again.head("a"), again.last_position) == ((2, first[-1].hash), 2)
        [third] = await again.append("a", [ev()], expected_version=2)
        assert (third.version, third.position, third.prev_hash) == (3, 3, first[-1].hash)
    finally:
        await again.close()


# -- expected version -----------------------------------------------------------------------------


async def test_an_append_at_the_wrong_version_is_a_conflict_and_writes_nothing(store):
    await store.append("a", [ev()], expected_version=NO_STREAM)
    with pytest.raises(ConcurrencyError, match="stream a is at version 1, but the append expected version 0"):
        await store.append("a", [ev()], expected_version=NO_STREAM)
    with pytest.raises(ConcurrencyError) as conflict:
        await store.append("a", [ev(), ev()], expected_version=5)
    assert (conflict.value.stream_id, conflict.value.expected, conflict.value.actual) == ("a", 5, 1)
    assert [e.version for e in await store.read_stream("a")] == [1]
    assert store.version("a") == 1
    assert [e.version for e in await store.append("a", [ev()], expected_version=1)] == [2]
    assert [e.version for e in await store.append("a", [ev()], expected_version=ANY_VERSION)] == [3]


async def test_in_one_group_a_conflict_fails_only_its_caller_and_one_of_two_racers_wins(store):
    await store.append("x", [ev()])
    outcome = await asyncio.gather(
        *[store.append("y", [ev()]) for _ in range(5)],
        store.append("x", [ev()], expected_version=NO_STREAM),  # stale
        store.append("z", [ev()], expected_version=NO_STREAM),  # two callers create the same stream:
        store.append("z", [ev()], expected_version=NO_STREAM),  # the first in the group wins
        return_exceptions=True,
    )
    assert all(isinstance(o, list) for o in outcome[:5])
    assert isinstance(outcome[5], ConcurrencyError)
    assert isinstance(outcome[6], list) and isinstance(outcome[7], ConcurrencyError)
    assert [e.version for e in await store.read_stream("y")] == [1, 2, 3, 4, 5]
    assert [e.event_id for e in await store.read_stream("z")] == [outcome[6][0].event_id]


# -- group commit ---------------------------------------------------------------------------------


async def test_concurrent_appends_land_in_few_commits_all_acknowledged_in_order(store):
    before, appends = store.commits, 600
    results = await asyncio.gather(
        *[store.append(f"s{i % 6}", [ev(actor=f"caller{i}")] * (1 + i % 3)) for i in range(appends)]
    )
    assert store.commits - before <= appends // 10  # grouped: far fewer transactions than appends
    for i, recorded in enumerate(results):  # each caller gets its own events back
        assert [e.metadata["actor"] for e in recorded] == [f"caller{i}"] * (1 + i % 3)
    positions = [e.position for recorded in results for e in recorded]
    assert positions == list(range(1, len(positions) + 1))  # in the order the callers asked
    for s in range(6):
        stream = await store.read_stream(f"s{s}")
        assert [e.version for e in stream] == list(range(1, len(stream) + 1))
        assert [e.metadata["actor"] for e in stream] == [
            f"caller{i}" for i in range(s, appends, 6) for _ in range(1 + i % 3)
        ]


async def test_groups_of_any_size_get_the_next_positions(store):
    sizes = [1, 2, 3, 7, 64, 65, 1024, 1025, 1500]  # one statement up to a size, several above it
    written = []
    for n, size in enumerate(sizes):
        written += await store.append(f"g{n}", [ev(actor=f"{n}-{i}") for i in range(size)])
    assert [e.position for e in written] == list(range(1, sum(sizes) + 1))
    assert await store.read_all() == written


# -- the hash chain -------------------------------------------------------------------------------


async def test_the_hash_chain_holds_and_a_tampered_row_is_found(store):
    rng = random.Random(7)
    for i in range(60):
        await store.append(f"h{rng.randrange(4)}", [ev(ServerUnsuspended if i % 2 else ServerSuspended, actor=f"{i}")])
    log = [e async for e in iterate(store.engine)]
    assert len(log) == 60 and chain_breaks(log) == []
    heads = {e.stream_id: e.hash for e in log}
    assert all(store.head(s)[1] == h for s, h in heads.items())

    victim = log[37]
    async with store.engine.begin() as conn:  # an edit in the database, by hand
        await conn.execute(
            update(events_table).where(events_table.c.position == victim.position).values(data={"edited": True})
        )
    assert chain_breaks([e async for e in iterate(store.engine)]) == [victim.position]


# -- reads after a position -----------------------------------------------------------------------


async def test_reads_after_a_position_return_exactly_what_follows_it(store):
    written = []
    for i in range(45):
        written += await store.append(f"r{i % 3}", [ev(actor=str(i))] * (1 + i % 2))
    end = written[-1].position
    for after in (0, 1, 17, end - 1, end, end + 5):
        rest = [e for e in written if e.position > after]
        assert await store.read_all(after=after) == rest
        assert await store.read_all(after=after, limit=5) == rest[:5]
        assert [e async for e in store.iterate_all(after=after, page=7)] == rest
        assert [e async for e in iterate(store.engine, after=after, page_size=7)] == rest
        got, nxt = await page(store.engine, EventFilter(), after, 10)
        assert (got, nxt) == (rest[:10], rest[9].position if len(rest) >= 10 else None)
        mine, _ = await page(store.engine, EventFilter(stream_id="r1"), after, 1000)
        assert mine == [e for e in rest if e.stream_id == "r1"]
    r2 = [e for e in written if e.stream_id == "r2"]
    pages = [p async for p in stream_pages(store.engine, "r2", 4, page_size=5, convert=to_events)]
    assert [e for p in pages for e in p] == r2[4:] and all(len(p) == 5 for p in pages[:-1])


# -- subscribers ----------------------------------------------------------------------------------


async def test_a_subscriber_hears_every_committed_event_once_in_order_before_its_appender_resumes(store):
    heard: list[RecordedEvent] = []
    groups: list[int] = []

    def listener(recorded):
        groups.append(len(recorded))
        heard.extend(recorded)

    def failing(recorded):
        raise RuntimeError("a subscriber that fails is isolated")

    store.subscribe(failing)
    unsubscribe = store.subscribe(listener)
    await store.append("s", [ev()])

    async def appender(n: int):
        for k in range(20):
            expected = ANY_VERSION if (n + k) % 5 else 999  # some appends conflict: never heard
            try:
                recorded = await store.append(f"s{n % 4}", [ev(actor=f"{n}-{k}")], expected_version=expected)
            except ConcurrencyError:
                continue
            assert recorded[-1] in heard  # heard before the appender resumed
            await asyncio.sleep(0)  # deliberate: a turn of the loop, so the appenders' groups interleave

    await asyncio.gather(*[appender(n) for n in range(12)])
    assert heard == await store.read_all()
    assert len(groups) < len(heard)  # groups, as committed
    unsubscribe()
    await store.append("s", [ev()])
    assert heard[-1].position == store.last_position - 1


# -- positions without gaps, as a reader tailing the log sees them --------------------------------


def _by_page(engine):
    """The auditors' and followers' read: a page of the log after a position."""

    async def read_after(last: int):
        batch, _ = await page(engine, EventFilter(), last, 50)
        return [e.position for e in batch], batch

    return read_after


def _by_position(engine):
    """The plainest read: the positions after one, in order."""

    async def read_after(last: int):
        q = select(events_table.c.position).where(events_table.c.position > last).order_by(events_table.c.position)
        async with engine.connect() as conn:
            return [r[0] for r in (await conn.execute(q.limit(50))).all()], []

    return read_after


async def _tail(read_after, seen: list, end) -> None:
    """Follow the log from its start, each read "after the last position seen", until `end()` says
    where the log ends (None while the writers are still at work). Every row read must be the very
    next position: a reader that got past a position never comes back for it."""
    last = 0
    while True:
        stop_at = end()
        if stop_at is not None and last >= stop_at:
            return
        positions, batch = await read_after(last)
        assert positions == list(range(last + 1, last + 1 + len(positions))), f"after {last}: {positions[:5]}"
        seen.extend(batch)
        if positions:
            last = positions[-1]
        else:
            await asyncio.sleep(0.001)  # deliberate: a tail reader's pace when it is caught up (what is tested)


async def test_a_tail_reader_never_skips_a_position_while_many_appenders_commit(store):
    appenders, rounds = 16, 25
    total = sum(1 + (n + k) % 3 for n in range(appenders) for k in range(rounds))
    seen: list[RecordedEvent] = []

    async def appender(n: int):
        out = []
        for k in range(rounds):
            out += await store.append(f"t{n}", [ev(actor=f"{n}-{k}")] * (1 + (n + k) % 3))
        return out

    results, _, _ = await asyncio.wait_for(
        asyncio.gather(
            asyncio.gather(*[appender(n) for n in range(appenders)]),
            _tail(_by_page(store.engine), seen, lambda: total),
            _tail(_by_position(store.engine), [], lambda: total),
        ),
        120,
    )
    acknowledged = sorted((e for r in results for e in r), key=lambda e: e.position)
    assert seen == acknowledged == await store.read_all()


async def test_a_second_writer_of_the_database_never_makes_a_tail_reader_skip(store, url):
    """Another store on the same database (another daemon, a second node of a fleet) commits while
    this one does. Positions stay gapless for a reader: a group never lands beside another writer's
    positions. SQLite makes the second writer wait for the write lock; on PostgreSQL a group that
    raced the other writer's for the same positions is refused today (the position is the table's
    key) and only its callers are told: no committed event is lost or skipped. (Serializing the
    writers of a fleet is the PostgreSQL backend's next step: then nothing is refused there either.)"""
    seen: list[RecordedEvent] = []
    acknowledged: list[RecordedEvent] = []
    refused: list[str] = []
    async with opened_store(url) as other:

        async def appender(s: EventStore, n: int):
            for k in range(30):
                try:
                    acknowledged.extend(await s.append(f"w{n}", [ev(actor=f"{n}-{k}")] * (1 + k % 2)))
                except StoreRefused as exc:
                    refused.append(str(exc))
                await asyncio.sleep(0)  # deliberate: a turn of the loop, so the two stores' writers interleave

        writing = asyncio.gather(*[appender(store if n % 2 else other, n) for n in range(8)])

        def end() -> int | None:
            return max(e.position for e in acknowledged) if writing.done() else None

        await asyncio.wait_for(
            asyncio.gather(
                writing, _tail(_by_page(store.engine), seen, end), _tail(_by_position(other.engine), [], end)
            ),
            120,
        )
    assert seen == sorted(acknowledged, key=lambda e: e.position) == await store.read_all()
    assert len(acknowledged) > 100
    if store.backend.name == "sqlite":
        assert refused == []
    else:  # refused for the positions another writer took, never for anything else
        assert all("refused the events" in r and "pk_events" in r for r in refused), refused[:1]
