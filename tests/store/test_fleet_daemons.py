"""Two nodes on one PostgreSQL database, as two `wingman serve` processes (docs/fleet.md): each
drives its own servers, every event names its node, a tail reader sees the whole log once and in
order while both write, one node cannot write to the other's server, and a second daemon with a
node id already running refuses to start and names the first."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import select

from tests.support.daemon import DaemonProcess, definition
from tests.support.fleet import TailReader, fleet_node
from wingman.engine.events import Metadata, NewEvent, ServerSuspended
from wingman.engine.store.database import create_engine
from wingman.engine.store.event_store import EventStore, ServerOfAnotherNode
from wingman.engine.store.schema import events as E

pytestmark = pytest.mark.postgres


def _drive(d: DaemonProcess, servers: list[str], cycles: int, failures: list[str]) -> None:
    """Start and stop each server `cycles` times through the node's API, all servers at once."""
    try:
        with d.client() as c:
            for _ in range(cycles):
                for action in ("start", "stop"):
                    ops = []
                    for uuid in servers:
                        resp = c.post(f"/api/servers/{uuid}/power", json={"action": action})
                        assert resp.status_code == 202, resp.text
                        ops.append(resp.json()["id"])
                    for op in ops:
                        body = d.wait_operation(op)
                        assert body["status"] == "succeeded", body
    except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
        failures.append(f"{d.folder.name}: {exc!r}")


async def _log(pg_url: str) -> list[tuple[int, str, str, str | None]]:
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as conn:
            q = select(E.c.position, E.c.event_id, E.c.stream_id, E.c.node_id).order_by(E.c.position)
            return [(r[0], r[1], r[2], r[3]) for r in await conn.execute(q)]
    finally:
        await engine.dispose()


async def test_two_nodes_share_one_database_each_with_its_servers(tmp_path, pg_url):
    a_servers, b_servers = [definition(), definition()], [definition(), definition()]
    a_ids = [s["settings"]["uuid"] for s in a_servers]
    b_ids = [s["settings"]["uuid"] for s in b_servers]
    a = fleet_node(tmp_path / "a", pg_url, "node-a", a_servers)
    b = fleet_node(tmp_path / "b", pg_url, "node-b", b_servers)
    reader = TailReader(pg_url)
    try:
        await asyncio.to_thread(a.start, 60)
        await asyncio.to_thread(b.start, 60)
        reader.start()
        failures: list[str] = []
        drivers = [
            threading.Thread(target=_drive, args=(a, a_ids, 3, failures)),
            threading.Thread(target=_drive, args=(b, b_ids, 3, failures)),
        ]
        for t in drivers:
            t.start()
        for t in drivers:
            await asyncio.to_thread(t.join, 300)
        assert failures == []

        # Node B may not write to node A's server: a store of node B on the same database is refused.
        engine = create_engine(pg_url)
        intruder = EventStore(engine, node_id="node-b")
        await intruder.open()
        try:
            with pytest.raises(ServerOfAnotherNode, match=f"{a_ids[0]} belongs to node node-a"):
                await intruder.append(a_ids[0], [NewEvent.of(ServerSuspended(), Metadata(actor="intruder"))])
        finally:
            await intruder.close()
            await engine.dispose()
        # Nor through node B's API, where node B still lists node A's servers (it folded them at boot).
        with b.client() as c:
            if c.get(f"/api/servers/{a_ids[0]}").status_code == 200:
                refused = c.post(f"/api/servers/{a_ids[0]}/power", json={"action": "start"})
                assert refused.status_code == 409, refused.text
                assert f"{a_ids[0]} belongs to node node-a" in refused.json()["error"]
    finally:
        reader.done.set()
        await asyncio.to_thread(reader.join, 60)
        for d in (b, a):
            await asyncio.to_thread(d.stop)
    assert reader.error is None
    log = await _log(pg_url)
    nodes = {stream: node for _, _, stream, node in log}
    assert {s: nodes[s] for s in a_ids} == dict.fromkeys(a_ids, "node-a")
    assert {s: nodes[s] for s in b_ids} == dict.fromkeys(b_ids, "node-b")
    assert {node for *_, node in log} == {"node-a", "node-b"}  # every event names its node
    for stream, node in ((s, n) for _, _, s, n in log):
        assert node == ("node-a" if stream in a_ids or stream == "node:node-a" else "node-b"), stream  # its own stream
    # Every event the tail reader could see while both wrote (it stopped before the daemons'
    # shutdown events), once and in order, with no position left behind.
    assert [p for p, *_ in log] == list(range(1, len(log) + 1))
    assert reader.reads > 10
    assert reader.seen == [(p, e) for p, e, *_ in log[: len(reader.seen)]]
    assert len(reader.seen) >= 4 * 3 * 2 * 3  # at least a request, a transition and an outcome per action


def test_a_second_daemon_with_a_node_id_in_use_exits_naming_the_first(tmp_path, pg_url):
    first = fleet_node(tmp_path / "first", pg_url, "node-a", [definition()])
    second = fleet_node(tmp_path / "second", pg_url, "node-a", [definition()])
    try:
        first.start(60)
        with pytest.raises(RuntimeError, match="daemon exited with") as exited:
            second.start(60)
        assert second.proc is not None and second.proc.returncode == 2, str(exited.value)
        said = second.read_log()
        assert "node id 'node-a' is taken on this database" in said, said[-3000:]
        assert f"wingman pid {first.proc.pid} on " in said, said[-3000:]
        assert "Traceback" not in said and "listening" not in said  # said plainly, before anything started
        # It started nothing: the first still answers, and the second's server never reached the log.
        assert first.client().get("/api/system").status_code == 200
        assert second.servers[0]["settings"]["uuid"] not in {s for _, _, s, _ in asyncio.run(_log(pg_url))}
    finally:
        second.stop()
        first.stop()
