"""The audit on PostgreSQL: the same reader, filters (JSON operators differ), snapshots, tamper
detection and export as on SQLite."""

from __future__ import annotations

import io
import random

import pytest
from sqlalchemy import text

from tests.support.synthetic_log import append_through_store, build_log
from wingman.engine.audit.export import export, read_csv, read_ndjson
from wingman.engine.audit.verify import verify
from wingman.engine.servers.replay import state_at
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.points import Point
from wingman.engine.store.queries import EventFilter, page

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(pg_url):
    engine = create_engine(pg_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def test_replay_filters_and_export_on_postgres(pg):
    ids = await build_log(pg, 2000, servers=2, seed=21)
    assert (await verify(pg)).ok
    cache = SnapshotCache(pg, every=25)
    rng = random.Random(1)
    for _ in range(10):
        point, server = Point(position=rng.randint(1, 2000)), rng.choice(ids)
        warm, plain = await state_at(pg, server, point, cache), await state_at(pg, server, point, None)
        a, b = warm.as_dict(), plain.as_dict()
        a.pop("replay"), b.pop("replay")
        assert a == b
    assert (await state_at(pg, ids[0], Point(position=2000), cache)).snapshot_version is not None
    events, _ = await page(pg, EventFilter(actor="daemon", types=["state.*"]), 0, 1000)
    assert events and all(e.metadata["actor"] == "daemon" and e.type == "state.changed" for e in events)
    op = events[0].data["operation_id"] or events[1].data["operation_id"]
    of_op, _ = await page(pg, EventFilter(operation_id=op), 0, 100)
    assert of_op[0].type == "power.requested"
    # One server's pages, from its own events and from any other position, in log order.
    everything, _ = await page(pg, EventFilter(), 0, 1000)
    everything += (await page(pg, EventFilter(), 1000, 1000))[0]
    mine = [e for e in everything if e.stream_id == ids[1]]
    other = next(e.position for e in everything[900:] if e.stream_id != ids[1])
    for after in (0, mine[len(mine) // 2].position, other):
        got, _ = await page(pg, EventFilter(stream_id=ids[1], types=["power.*", "state.changed"]), after, 1000)
        assert got == [
            e for e in mine if e.position > after and (e.type.startswith("power.") or e.type == "state.changed")
        ]
    nd, cs = io.StringIO(), io.StringIO()
    assert await export(pg, nd, "ndjson") == await export(pg, cs, "csv") == 2000
    assert list(read_ndjson(nd.getvalue().splitlines())) == list(read_csv(io.StringIO(cs.getvalue())))


async def test_tampering_found_on_postgres(pg):
    store = EventStore(pg)
    await store.open()
    ids = await append_through_store(store, 40, servers=2, seed=5)
    await store.close()
    assert (await verify(pg)).ok
    async with pg.begin() as conn:
        row = (
            await conn.execute(
                text("SELECT position, version FROM events WHERE stream_id = :s AND version = 7"), {"s": ids[0]}
            )
        ).one()
        await conn.execute(
            text("UPDATE events SET data = CAST(:d AS JSON) WHERE position = :p"),
            {"d": '{"edited": true}', "p": row.position},
        )
    report = await verify(pg)
    assert not report.ok
    assert (report.first.stream_id, report.first.version, report.first.position, report.first.check) == (
        ids[0],
        7,
        row.position,
        "hash",
    )
