"""Filtered paging of the log: by position, type (exact or prefix), actor, operation and time."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import event

from tests.support.synthetic_log import BASE_TIME, build_log
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.queries import EventFilter, iterate, page

EVENTS = 1500


@pytest.fixture
async def log(tmp_path):
    path = tmp_path / "wingman.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    ids = await build_log(engine, EVENTS, servers=3, seed=4)
    yield engine, ids, path
    await engine.dispose()


async def collect(engine, flt, limit=97):
    out, after = [], 0
    while True:
        batch, nxt = await page(engine, flt, after, limit)
        out.extend(batch)
        assert len(batch) <= limit
        if nxt is None:
            return out
        assert nxt == batch[-1].position
        after = nxt


async def test_pages_cover_the_log_once_in_order(log):
    engine, _, _ = log
    events = await collect(engine, EventFilter())
    assert [e.position for e in events] == list(range(1, EVENTS + 1))
    assert [e.position async for e in iterate(engine, page_size=200)] == list(range(1, EVENTS + 1))


async def test_server_and_type_filters(log):
    engine, ids, _ = log
    mine = await collect(engine, EventFilter(stream_id=ids[1]))
    assert mine and {e.stream_id for e in mine} == {ids[1]}
    assert [e.version for e in mine] == list(range(1, len(mine) + 1))
    power = await collect(engine, EventFilter(stream_id=ids[1], types=["power.*"]))
    assert power and all(e.type.startswith("power.") for e in power)
    assert len(power) == sum(e.type.startswith("power.") for e in mine)
    two = await collect(engine, EventFilter(types=["state.changed", "process.exited"]))
    assert {e.type for e in two} == {"state.changed", "process.exited"}


async def test_actor_and_operation_filters(log):
    engine, ids, _ = log
    daemon = await collect(engine, EventFilter(actor="daemon"))
    assert daemon and all(e.metadata["actor"] == "daemon" for e in daemon)
    op = next(e for e in await collect(engine, EventFilter(stream_id=ids[0], types=["power.requested"])))
    op_id = op.data["operation_id"]
    ops = await collect(engine, EventFilter(operation_id=op_id))
    types = [e.type for e in ops]
    assert types[0] == "power.requested" and types[1] == "power.started" and "state.changed" in types
    assert types[-1] in ("power.succeeded", "power.failed")
    assert all(e.stream_id == ids[0] for e in ops)


async def test_time_range_is_inclusive(log):
    engine, _, _ = log
    since, until = BASE_TIME + timedelta(seconds=100), BASE_TIME + timedelta(seconds=199)
    window = await collect(engine, EventFilter(since=since, until=until))
    assert len(window) == 100  # one event a second: 100 s .. 199 s inclusive
    assert window[0].recorded_at == since and window[-1].recorded_at == until


async def test_a_malformed_row_does_not_break_filters(log):
    engine, ids, path = log
    con = sqlite3.connect(path)
    with con:
        # The operation-id index refuses metadata that is not JSON; whoever edits the file by hand
        # can drop it first, and the audit must still read the rest of the log.
        con.execute("DROP INDEX ix_events_operation_id")
        con.execute("UPDATE events SET metadata = 'not json' WHERE position = 50")
    con.close()
    daemon = await collect(engine, EventFilter(actor="daemon"))
    assert all(e.position != 50 for e in daemon)
    everything = await collect(engine, EventFilter())
    assert everything[49].metadata == "not json"  # handed over as stored, for verification to name


async def test_a_server_page_starts_after_any_position(log):
    """`after` may be any position: one of the server's events (every `next_after` is), another
    server's, or past the end. The page holds the server's events after it, in log order."""
    engine, ids, _ = log
    everything = await collect(engine, EventFilter())
    mine = [e for e in everything if e.stream_id == ids[2]]
    others = [e.position for e in everything if e.stream_id != ids[2]]
    for after in (
        0,
        mine[0].position,
        mine[len(mine) // 2].position,
        others[len(others) // 3],
        others[-1],
        EVENTS + 10,
    ):
        got, _ = await page(engine, EventFilter(stream_id=ids[2]), after, 1000)
        assert [e.position for e in got] == [e.position for e in mine if e.position > after], after
    typed, _ = await page(engine, EventFilter(stream_id=ids[2], types=["power.*"]), others[len(others) // 2], 1000)
    assert typed == [e for e in mine if e.position > others[len(others) // 2] and e.type.startswith("power.")]


async def test_a_server_page_searches_an_index(log):
    """One server's page, with or without other filters, is a search of the (stream_id, version)
    index in its order: never a scan of the log, never a sort, however long the log grows."""
    engine, ids, path = log
    sent: list[tuple[str, tuple]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT events.position"):
            sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", keep)
    mine = await collect(engine, EventFilter(stream_id=ids[0]), limit=50)
    for flt in (
        EventFilter(stream_id=ids[0], types=["state.changed"]),
        EventFilter(stream_id=ids[0], actor="daemon"),
        EventFilter(stream_id=ids[0], types=["power.*"], since=BASE_TIME),
    ):
        await page(engine, flt, mine[3].position, 50)
        await page(engine, flt, mine[3].position + 1, 50)  # not one of its events
    event.remove(engine.sync_engine, "before_cursor_execute", keep)
    assert len(sent) > 6
    con = sqlite3.connect(path)
    try:
        for statement, parameters in sent:
            plan = " | ".join(row[3] for row in con.execute("EXPLAIN QUERY PLAN " + statement, parameters))
            assert plan.startswith("SEARCH events USING INDEX sqlite_autoindex_events_") and "stream_id=?" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
    finally:
        con.close()


async def test_a_log_from_before_migration_0005_pages_the_same_after_it(tmp_path):
    """Upgrading drops the (stream_id, position) index; each server's pages, and the whole log's,
    come back exactly as they did before the upgrade."""
    path = tmp_path / "wingman.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(engine, "0004_checkpoints")
        ids = await build_log(engine, 600, servers=3, seed=9)
        filters = [
            EventFilter(),
            *(EventFilter(stream_id=s) for s in ids),
            EventFilter(stream_id=ids[0], types=["power.*"]),
        ]
        before = [await collect(engine, flt, limit=41) for flt in filters]
        await upgrade(engine)
        con = sqlite3.connect(path)
        indexes = {row[1] for row in con.execute("PRAGMA index_list(events)")}
        con.close()
        assert "ix_events_stream_id_position" not in indexes and "ix_events_type" in indexes
        assert [await collect(engine, flt, limit=41) for flt in filters] == before
    finally:
        await engine.dispose()
