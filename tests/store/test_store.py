"""The event store beyond what every backend must do (tests/store/test_store_conformance.py): failures
inside a group, other writers of the database, migrations, and the replay's page reads, on a real
SQLite file and on a real PostgreSQL server."""

import asyncio
from datetime import UTC

import pytest

from tests.support.daemon import opened_store
from wingman.engine.events import Metadata, NewEvent, ServerSuspended
from wingman.engine.store.database import sqlite_url
from wingman.engine.store.event_store import StoreRefused
from wingman.engine.store.hashing import GENESIS


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request, tmp_path):
    """The same tests on a real SQLite file and on a real PostgreSQL server."""
    url = sqlite_url(tmp_path) if request.param == "sqlite" else request.getfixturevalue("pg_url")
    async with opened_store(url) as s:
        yield s


def ev(kind=ServerSuspended, **meta):
    return NewEvent.of(kind(), Metadata(**meta))


REFUSE_INSERTS = {
    "sqlite": ["CREATE TRIGGER no_more BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk says no'); END"],
    "postgresql": [
        "CREATE FUNCTION no_more() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk says no'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER no_more BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION no_more()",
    ],
}


async def test_a_refused_commit_fails_every_caller_with_the_reason(store):
    await store.append("a", [ev()])
    # A trigger makes the database refuse inserts: a real error inside the group's transaction.
    async with store.engine.begin() as conn:
        for statement in REFUSE_INSERTS[store.engine.dialect.name]:
            await conn.exec_driver_sql(statement)
    outcome = await asyncio.gather(*[store.append("a", [ev()]) for _ in range(3)], return_exceptions=True)
    # A refusal is not "unavailable": nothing retries it for ever (see test_store_faults.py).
    assert all(isinstance(o, StoreRefused) and "disk says no" in str(o) for o in outcome)
    assert len(await store.read_stream("a")) == 1
    assert store.version("a") == 1  # the failed group did not move the stream's head


async def test_appends_wait_for_other_writers_of_the_database(store):
    """Snapshots and checkpoints write the same database on connections of their own: the
    store's writer waits for their write transactions rather than failing with "locked"."""
    from sqlalchemy import text

    from wingman.engine.store.database import WRITE_TRANSACTION

    async def other_writer():
        for _ in range(30):
            async with store.engine.connect() as conn:
                conn = await conn.execution_options(**WRITE_TRANSACTION)
                async with conn.begin():
                    await conn.execute(text("SELECT count(*) FROM events"))
                    await conn.execute(text("DELETE FROM snapshots WHERE stream_id = 'nobody'"))
            await asyncio.sleep(0)  # deliberate: a turn of the loop, so the appender's writes interleave

    async def appender():
        for _ in range(100):
            await store.append("a", [ev()])

    await asyncio.gather(appender(), other_writer())
    assert [e.version for e in await store.read_stream("a")] == list(range(1, 101))


async def test_a_row_another_writer_added_moves_the_log_and_the_next_group_follows_it(store):
    """The writer remembers where the log ends; a row that another connection committed meanwhile
    is not overwritten or collided with: the next group goes after it."""
    import uuid
    from datetime import datetime

    from sqlalchemy import insert

    from wingman.engine.store.schema import events

    first = await store.append("a", [ev(), ev()])
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(events).values(
                position=3,
                stream_id="elsewhere",
                version=1,
                event_id=str(uuid.uuid4()),
                type="server.suspended",
                data={},
                metadata={},
                recorded_at=datetime.now(UTC),
                prev_hash=GENESIS,
                hash="f" * 64,
            )
        )
    after = await store.append("a", [ev()], expected_version=2)
    assert [e.position for e in first + after] == [1, 2, 4]
    assert [(e.position, e.stream_id) for e in await store.read_all()] == [
        (1, "a"),
        (2, "a"),
        (3, "elsewhere"),
        (4, "a"),
    ]


def test_the_declared_head_is_alembics():
    """Boot skips alembic when the database is at the head the migration files declare: that
    head must be the one alembic itself finds."""
    from alembic.script import ScriptDirectory

    from wingman.engine.store.database import _alembic_config, declared_head

    assert declared_head() == ScriptDirectory.from_config(_alembic_config()).get_current_head()


async def test_a_current_database_is_not_migrated_again(tmp_path):
    from wingman.engine.store.database import create_engine, declared_head, upgrade

    engine = create_engine(sqlite_url(tmp_path))
    try:
        assert await upgrade(engine, "0003_operation_index") == "0003_operation_index"  # an older database
        assert await upgrade(engine) == declared_head()  # behind: alembic brings it up
        assert await upgrade(engine) == declared_head()  # current: left alone
    finally:
        await engine.dispose()


async def test_stream_pages_read_back_every_event_and_a_refused_read_is_sqlalchemys_error(store):
    """Replays read a stream a page at a time (on SQLite through the reader thread's driver
    cursor): every event comes back once, in order, and a read the database refuses raises
    SQLAlchemy's error, as every other read does, not the driver's own."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from wingman.engine.store.lenient_rows import to_events
    from wingman.engine.store.queries import stream_pages

    written = []
    for _ in range(7):
        written += await store.append("p", [ev(), ev()])
    pages = [page async for page in stream_pages(store.engine, "p", 3, page_size=4, convert=to_events)]
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [e for p in pages for e in p] == written[3:]
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE events RENAME TO events_gone")
    try:
        with pytest.raises((OperationalError, ProgrammingError), match="events"):
            [page async for page in stream_pages(store.engine, "p", 0, page_size=4, convert=to_events)]
    finally:
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE events_gone RENAME TO events")


async def test_a_fold_walks_every_page_and_lets_other_reads_in_between(store):
    """A replay folds a stream page after page where the pages are read (on SQLite the reader's
    thread, without coming back to the loop between pages): it sees every event once, in order;
    on SQLite a read asked for meanwhile is answered between two pages instead of after the whole
    stream; and an error the fold raises reaches the caller."""
    import threading

    from sqlalchemy import func, select

    from wingman.engine.store.backends import backend_of
    from wingman.engine.store.lenient_rows import to_events
    from wingman.engine.store.queries import fold_stream
    from wingman.engine.store.schema import events

    written = []
    for _ in range(5):
        written += await store.append("w", [ev(), ev()])
    on_thread = store.engine.dialect.name == "sqlite"  # PostgreSQL: pages are taken on the loop
    loop = asyncio.get_running_loop()
    seen, order, asked = [], [], threading.Event()
    other: list[asyncio.Future] = []

    def count(rows):  # runs where the read runs: on SQLite the reader's thread
        order.append("other read")
        return rows[0][0]

    def ask_meanwhile():
        other.append(backend_of(store.engine).read(store.engine, select(func.count()).select_from(events), count, None))
        asked.set()

    def take(page):
        order.append(f"page of {len(page)}")
        seen.extend(page)
        if on_thread and len(order) == 1:  # another caller reads while this page is folded
            loop.call_soon_threadsafe(ask_meanwhile)
            assert asked.wait(10)

    await fold_stream(store.engine, "w", 0, 3, to_events, take)
    assert seen == written
    if on_thread:
        assert await other[0] == 10
        assert order == ["page of 3", "other read", "page of 3", "page of 3", "page of 1"]
    else:
        assert order == ["page of 3", "page of 3", "page of 3", "page of 1"]

    def failing(page):
        raise ValueError("this fold refuses its first page")

    with pytest.raises(ValueError, match="refuses its first page"):
        await fold_stream(store.engine, "w", 0, 3, to_events, failing)
