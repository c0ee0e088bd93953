"""Which node wrote what, as the audit reads it from a fleet's PostgreSQL database, written by real
stores: a log from before node ids, two nodes' stores, and a server handed over from one node to the
other. The fleet summary groups them, the filters keep one node's events, a finding names the node
of its event (none for an event from before node ids), and an export keeps its node."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import text

from tests.support.synthetic_log import append_through_store, build_log
from wingman.engine.audit.export import export, read_csv
from wingman.engine.audit.fleet import fleet_summary
from wingman.engine.audit.nodes import NodeFilter, streams_by_node
from wingman.engine.audit.verify import verify
from wingman.engine.events import Metadata, NewEvent, ServerSuspended
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.ownership import hand_over

pytestmark = pytest.mark.postgres


@pytest.fixture
async def fleet(pg_url):
    """60 events from before node ids, 40 of node A, 40 of node B, and B's first server handed to A,
    which then writes one event to it."""
    engine = create_engine(pg_url)
    await upgrade(engine)
    old = await build_log(engine, 60, servers=2, seed=1)
    a, b = EventStore(engine, node_id="node-a"), EventStore(engine, node_id="node-b")
    await a.open()
    await b.open()
    try:
        a_ids = await append_through_store(a, 40, servers=2, seed=2)
        b_ids = await append_through_store(b, 40, servers=2, seed=3)
    finally:
        await a.close()
        await b.close()
    # The handover while both nodes are stopped; node A starts again and writes to its new server.
    assert await hand_over(engine, b_ids[0], "node-b", "node-a")
    again = EventStore(engine, node_id="node-a")
    await again.open()
    try:
        await again.append(b_ids[0], [NewEvent.of(ServerSuspended(), Metadata(actor="operator"))])
    finally:
        await again.close()
    try:
        yield engine, old, a_ids, b_ids
    finally:
        await engine.dispose()


async def _position(engine, where: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT min(position) FROM events WHERE {where}"))).scalar_one())


async def _forge(engine, position: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE events SET metadata = jsonb_set(metadata::jsonb, '{actor}', '\"forger\"')::json "
                "WHERE position = :p"
            ),
            {"p": position},
        )


async def test_streams_events_and_findings_by_node(fleet):
    engine, old, a_ids, b_ids = fleet
    grouped = await streams_by_node(engine)
    assert grouped == {"node-a": set(a_ids) | {b_ids[0]}, "node-b": set(b_ids), None: set(old)}

    summary = await fleet_summary(engine)
    assert summary.ok and [n.node for n in summary.nodes] == ["node-a", "node-b", None]
    a, b, none = summary.nodes
    assert (a.events, b.events, none.events) == (41, 40, 60)
    assert a.servers == sorted(set(a_ids) | {b_ids[0]}) and b.servers == sorted(b_ids) and none.servers == sorted(old)
    assert (none.last_position, b.last_position, a.last_position) == (60, 140, 141)
    assert [n.report.streams_checked if n.report else None for n in summary.nodes] == [3, 2, 2]
    # Each node's own log of checkpoints (none signed here: no checkpointer ran); the events from
    # before node ids open every node's log, and have none of their own.
    assert [n.checkpoints.node if n.checkpoints else None for n in summary.nodes] == ["node-a", "node-b", None]
    assert [n.node for n in (await fleet_summary(engine, only="node-b")).nodes] == ["node-b"]
    assert (await fleet_summary(engine, verify_streams=False)).as_dict()["ok"] is None

    # One node's events; with `unnamed`, also those from before node ids.
    out = io.StringIO()
    assert await export(engine, out, "ndjson", NodeFilter(node_id="node-a")) == 41
    assert await export(engine, io.StringIO(), "ndjson", NodeFilter(node_id="node-a", unnamed=True)) == 101
    out = io.StringIO()
    await export(engine, out, "csv", NodeFilter(node_id="node-b"))
    records = list(read_csv(io.StringIO(out.getvalue())))
    assert len(records) == 40 and {r["node_id"] for r in records} == {"node-b"}
    # An export from before node ids (no node_id column) still reads back.
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    older = io.StringIO()
    csv.writer(older, lineterminator="\n").writerows(r[:-1] for r in rows)
    assert [r["hash"] for r in read_csv(io.StringIO(older.getvalue()))] == [r["hash"] for r in records]

    # A forged event names the node that wrote it; an event from before node ids names none.
    before_ids = await _position(engine, f"stream_id = '{old[1]}' AND version = 3")
    of_a = await _position(engine, f"stream_id = '{b_ids[0]}' AND node_id = 'node-a'")
    await _forge(engine, before_ids)
    await _forge(engine, of_a)
    report = await verify(engine)
    found = {f.position: f for f in report.findings if f.check == "hash"}
    assert found[before_ids].node is None and not str(found[before_ids]).startswith("node")
    assert found[of_a].node == "node-a" and str(found[of_a]).startswith(f"node node-a, server {b_ids[0]}, v")
    summary = await fleet_summary(engine)
    by_node = {n.node: n.report for n in summary.nodes}
    assert not summary.ok
    first_a, first_none = by_node["node-a"].first, by_node[None].first
    assert first_a is not None and (first_a.node, first_a.position) == ("node-a", of_a)
    assert first_none is not None and (first_none.node, first_none.position) == (None, before_ids)
    # Node B wrote the handed-over server's history before node A: its streams include it, and the
    # problem there names node A, which wrote the forged event.
    first_b = by_node["node-b"].first
    assert first_b is not None and (first_b.node, first_b.position) == ("node-a", of_a)
