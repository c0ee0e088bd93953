"""Point-in-time replay: the answer with snapshots equals a fold of the log's prefix, at random
positions and times, exactly on events and between them; snapshots that do not match the log
are ignored and rebuilt; an old database without the table still answers."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, timedelta

import pytest
from sqlalchemy import func, select, text

from tests.support.synthetic_log import BASE_TIME, build_log
from wingman.engine.servers.fold import LogError, fold
from wingman.engine.servers.replay import UnknownStream, state_at
from wingman.engine.servers.snapshot_cache import SnapshotCache, snapshots
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.points import Point, parse_point

EVENTS, SERVERS, EVERY = 3000, 3, 40


@pytest.fixture
async def log(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'wingman.db'}")
    await upgrade(engine)
    ids = await build_log(engine, EVENTS, servers=SERVERS, seed=3)
    store = EventStore(engine)
    yield engine, store, ids, tmp_path / "wingman.db"
    await engine.dispose()


def strip(answer) -> dict:
    d = answer.as_dict()
    d.pop("replay", None)
    return d


async def reference(store: EventStore, server: str, point: Point) -> dict:
    """The plain fold of the prefix the point selects (no snapshot, no audit code)."""
    prefix = [e for e in await store.read_stream(server) if point.includes(e.position, e.recorded_at)]
    view = fold(server, prefix)
    return view


async def snapshot_count(engine, server: str | None = None) -> int:
    q = select(func.count()).select_from(snapshots)
    if server:
        q = q.where(snapshots.c.stream_id == server)
    async with engine.connect() as conn:
        return (await conn.execute(q)).scalar_one()


async def test_random_points_match_the_plain_fold(log):
    engine, store, ids, _ = log
    cache = SnapshotCache(engine, every=EVERY)
    rng = random.Random(5)
    points = [Point(position=rng.randint(1, EVENTS)) for _ in range(15)]
    points += [Point(time=BASE_TIME + timedelta(seconds=rng.uniform(0, EVENTS))) for _ in range(15)]
    for point in points:
        server = rng.choice(ids)
        warm = await state_at(engine, server, point, cache)
        plain = await state_at(engine, server, point, None)
        assert strip(warm) == strip(plain)
        ref = await reference(store, server, point)
        v = warm.view
        assert (v.state, v.version, v.position, v.suspended, v.operation_in_flight, v.last_transition) == (
            ref.state,
            ref.version,
            ref.position,
            ref.suspended,
            ref.operation_in_flight,
            ref.last_transition,
        )
        assert v.config == ref.config
    assert await snapshot_count(engine) > 0
    used = [await state_at(engine, ids[0], Point(position=EVENTS), cache) for _ in range(2)]
    assert used[1].snapshot_version is not None and used[1].events_folded < EVERY


async def test_times_exactly_on_and_between_events(log):
    engine, store, ids, _ = log
    cache = SnapshotCache(engine, every=EVERY)
    events = await store.read_stream(ids[1])
    for ev in events[10:200:17]:
        on = await state_at(engine, ids[1], Point(time=ev.recorded_at), cache)
        assert on.view.version == ev.version  # an event recorded exactly at the time counts
        between = await state_at(engine, ids[1], Point(time=ev.recorded_at + timedelta(microseconds=1)), cache)
        assert between.view.version == ev.version
        before = await state_at(engine, ids[1], Point(time=ev.recorded_at - timedelta(microseconds=1)), cache)
        assert before.view.version == ev.version - 1
        at_pos = await state_at(engine, ids[1], Point(position=ev.position), cache)
        assert at_pos.view.version == ev.version
        assert (await state_at(engine, ids[1], Point(position=ev.position - 1), cache)).view.version == ev.version - 1


async def test_rfc3339_offsets_name_the_same_instant(log):
    engine, store, ids, _ = log
    ev = (await store.read_stream(ids[0]))[30]
    utc = ev.recorded_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    shifted = (ev.recorded_at + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    a = await state_at(engine, ids[0], parse_point(utc), None)
    b = await state_at(engine, ids[0], parse_point(shifted), None)
    assert a.view.version == b.view.version == ev.version


async def test_before_the_first_event_the_server_did_not_exist(log):
    engine, _, ids, _ = log
    answer = await state_at(engine, ids[0], Point(time=BASE_TIME - timedelta(days=1)), SnapshotCache(engine))
    assert answer.view is None and answer.as_dict()["exists"] is False
    with pytest.raises(UnknownStream):
        await state_at(engine, "00000000-0000-4000-8000-000000000000", Point(), None)


async def test_edited_snapshot_is_ignored_and_rebuilt(log):
    engine, _, ids, path = log
    cache = SnapshotCache(engine, every=EVERY)
    point = Point(position=EVENTS)
    truth = strip(await state_at(engine, ids[0], point, cache))
    con = sqlite3.connect(path)
    with con:
        for version, state in con.execute(
            "SELECT version, state FROM snapshots WHERE stream_id = ?", (ids[0],)
        ).fetchall():
            doc = json.loads(state)
            doc["state"] = "running" if doc["state"] != "running" else "offline"
            doc["suspended"] = not doc["suspended"]
            con.execute(
                "UPDATE snapshots SET state = ? WHERE stream_id = ? AND version = ?", (json.dumps(doc), ids[0], version)
            )
    con.close()
    again = await state_at(engine, ids[0], point, cache)
    assert strip(again) == truth
    # The edited snapshots were dropped on the way, and the replay saved good ones again.
    third = await state_at(engine, ids[0], point, cache)
    assert third.snapshot_version is not None and strip(third) == truth


async def test_snapshot_of_a_rewritten_event_is_not_trusted(log):
    """When an event a snapshot was folded up to is no longer the same event, the snapshot goes."""
    engine, _, ids, path = log
    cache = SnapshotCache(engine, every=EVERY)
    await state_at(engine, ids[2], Point(), cache)
    con = sqlite3.connect(path)
    version = con.execute("SELECT max(version) FROM snapshots WHERE stream_id = ?", (ids[2],)).fetchone()[0]
    with con:
        con.execute("UPDATE events SET hash = ? WHERE stream_id = ? AND version = ?", ("e" * 64, ids[2], version))
    con.close()
    answer = await state_at(engine, ids[2], Point(), cache)
    assert answer.snapshot_version != version


async def test_snapshots_of_another_fold_are_not_used(log):
    engine, _, ids, _ = log
    cache = SnapshotCache(engine, every=EVERY)
    await state_at(engine, ids[0], Point(), cache)
    async with engine.begin() as conn:
        await conn.execute(snapshots.update().values(fingerprint="0" * 64))
    answer = await state_at(engine, ids[0], Point(), cache)
    assert answer.snapshot_version is None  # folded from the start, and saved fresh snapshots


async def test_old_database_without_snapshots_table_still_answers(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    await upgrade(engine, "0001_events")
    ids = await build_log(engine, 400, servers=2, seed=9)
    cache = SnapshotCache(engine, every=EVERY)
    answer = await state_at(engine, ids[0], Point(position=300), cache)
    assert answer.view is not None and answer.snapshot_version is None
    async with engine.connect() as conn:
        tables = (await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))).scalars().all()
    assert "snapshots" not in tables
    await engine.dispose()


async def test_a_gap_in_the_log_is_refused_not_guessed(log):
    engine, _, ids, path = log
    con = sqlite3.connect(path)
    with con:
        con.execute("DELETE FROM events WHERE stream_id = ? AND version = 20", (ids[0],))
    con.close()
    assert (await state_at(engine, ids[0], Point(position=1), None)).view.version == 1
    with pytest.raises(LogError, match="expected version 20"):
        await state_at(engine, ids[0], Point(), None)


async def test_integers_beyond_64_bits_replay_exactly(tmp_path):
    """JSON integers too long for orjson (it reads them as floats) come back from a replay as
    the exact integers the store wrote, folded from the log and from a snapshot alike."""
    from wingman.engine.events import NewEvent

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'wingman.db'}")
    await upgrade(engine)
    store = EventStore(engine)
    await store.open()
    data = {
        "runtime": "process",
        "pid": 2**70 + 1,
        "start_ticks": 18446744073709551616,
        "container_id": None,
        "adopted": False,
        "boot_id": "-9223372036854775809",
    }
    try:
        await store.append(
            "big", [NewEvent(type="process.started", data=data, metadata={"actor": "daemon", "ticket": -(2**80)})]
        )
        await store.append("big", [NewEvent(type="server.suspended", data={}, metadata={"actor": "cli"})])
    finally:
        await store.close()
    cache = SnapshotCache(engine, every=1)
    folded = await state_at(engine, "big", Point(), cache)
    from_snapshot = await state_at(engine, "big", Point(), cache)
    await engine.dispose()
    assert from_snapshot.snapshot_version == 2 and from_snapshot.events_folded == 0
    for answer in (folded, from_snapshot):
        assert repr(sorted(answer.view.last_process.items())) == repr(sorted(data.items()))  # exact ints
        assert answer.view.suspended


def test_stored_times_read_as_the_general_parse_reads_them():
    """The reader's one-call parse of the stored spelling gives what the general path gives, and
    leaves every other text (an offset, a Z, an edit) to it."""
    from datetime import datetime

    from wingman.engine.store.lenient_rows import _time

    def general(raw):
        try:
            ts = datetime.fromisoformat(raw)
        except ValueError:
            return raw
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

    texts = [
        "2026-01-01 00:00:20.000000",
        "2026-01-01T00:00:20.000001",
        "2026-01-01 00:00:20.000+01",
        "2026-01-01 00:00:20.00000Z",
        "2026-01-01 00:00:20+01:00:0",
        "2026-13-01 00:00:20.000000",
        "not a time at all, 26 ch.",
        "2026-01-01 00:00:20.123456+02:00",
        "2026-01-01 00:00:20",
    ]
    for raw in texts:
        assert repr(_time(raw)) == repr(general(raw)), raw


async def test_an_unreadable_time_is_refused_from_the_point_where_it_is_read(log):
    """A page is decoded only up to the point, and the first row past it is looked at: a row with
    an edited time is refused as soon as it is that row (where it falls cannot be told), named as
    a RecordedEvent, and never looked at from a point before the row ahead of it."""
    engine, _, ids, path = log
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE events SET recorded_at = 'yesterday-ish' WHERE stream_id = ? AND version = 30", (ids[0],))
        at = dict(
            con.execute(
                "SELECT version, position FROM events WHERE stream_id = ? AND version IN (28, 29, 30)", (ids[0],)
            ).fetchall()
        )
    con.close()
    assert (await state_at(engine, ids[0], Point(position=at[28]), None)).view.version == 28
    for point in (
        Point(position=at[29]),
        Point(position=at[30]),
        Point(time=BASE_TIME + timedelta(seconds=EVENTS)),
        Point(),
    ):
        with pytest.raises(LogError, match="is not a valid time") as refused:
            await state_at(engine, ids[0], point, None)
        assert type(refused.value.event).__name__ == "RecordedEvent" and refused.value.event.version == 30


@pytest.mark.parametrize(
    "column, text_, read_as, problem",
    [
        ("data", "not json", "not json", "its data is not a JSON object"),
        ("data", '{"cut": "sh', '{"cut": "sh', "its data is not a JSON object"),
        # (malformed metadata cannot be written: the operation index reads it; a non-object can)
        ("metadata", "[1, 2]", [1, 2], "its metadata is not a JSON object"),
        ("recorded_at", "2026-13-01 00:00:20.000000", "2026-13-01 00:00:20.000000", "is not a valid time"),
    ],
)
async def test_a_full_replay_refuses_an_edited_row_and_names_it(log, column, text_, read_as, problem):
    """The full replay's decoding (a million rows: its fast path is spelled out) reads an edited
    column as the text it holds when it does not parse, and the fold refuses that row by name."""
    engine, _, ids, path = log
    con = sqlite3.connect(path)
    with con:
        con.execute(f"UPDATE events SET {column} = ? WHERE stream_id = ? AND version = 30", (text_, ids[0]))
    con.close()
    with pytest.raises(LogError, match=problem) as refused:
        await state_at(engine, ids[0], Point(), None)
    assert refused.value.event.version == 30 and getattr(refused.value.event, column) == read_as
