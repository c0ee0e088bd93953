"""Readers of "everything after N" in a fleet's shared database (docs/fleet.md, "Each node reads
its own events"): the event stream (SSE) of a node shows its own events by default and every node's
with `scope=fleet` (another node's live, as they commit); each node's Panel activity outbox reads
its own node's events with a cursor of its own, and a node upgraded from the one shared cursor
carries on from it."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid as uuidlib

import httpx
import pytest
from sqlalchemy import text

from tests.support.daemon import DaemonProcess, definition
from tests.support.fleet import fleet_node
from wingman.engine.events import WEBSOCKET_CHANNEL, Metadata, NewEvent, PowerRequested
from wingman.engine.remote.activity_cursor import OutboxCursor
from wingman.engine.remote.activity_entries import pending
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.event_store import EventStore

pytestmark = pytest.mark.postgres


def _power(d: DaemonProcess, uuid: str, action: str) -> None:
    with d.client() as c:
        resp = c.post(f"/api/servers/{uuid}/power", json={"action": action})
        assert resp.status_code == 202, resp.text
        assert d.wait_operation(resp.json()["id"])["status"] == "succeeded"


class SseReader(threading.Thread):
    """Reads a node's event stream into `events` until `done` is set."""

    def __init__(self, d: DaemonProcess, **params: str):
        super().__init__(daemon=True)
        self.d, self.params = d, params
        self.events: list[dict] = []
        self.opened = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        # Heartbeat comments come while idle, so the loop sees `done` soon after it is set.
        with httpx.Client(base_url=self.d.url, headers=self.d.headers, timeout=httpx.Timeout(5, read=60)) as c:
            with c.stream("GET", "/api/events/stream", params=self.params) as resp:
                self.opened.set()
                try:
                    for line in resp.iter_lines():
                        if self.done.is_set():
                            return
                        if line.startswith("data: "):
                            self.events.append(json.loads(line[6:]))
                except httpx.HTTPError:
                    if not self.done.is_set():  # the daemon ending the stream as it stops is expected
                        raise

    def until(self, fact, timeout: float = 30) -> None:
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not fact(self.events):
                assert not deadline.wait(0.05), f"not seen in {timeout} s: {[e['stream_id'] for e in self.events]}"
        finally:
            timer.cancel()


async def test_the_event_stream_shows_the_nodes_own_events_unless_asked_for_the_fleet(tmp_path, pg_url):
    a_server, b_server = definition(), definition()
    a_id, b_id = a_server["settings"]["uuid"], b_server["settings"]["uuid"]
    a = fleet_node(tmp_path / "a", pg_url, "node-a", [a_server])
    b = fleet_node(tmp_path / "b", pg_url, "node-b", [b_server])
    readers: list[SseReader] = []
    try:
        await asyncio.to_thread(a.start, 60)
        await asyncio.to_thread(b.start, 60)
        await asyncio.to_thread(_power, b, b_id, "start")
        own, fleet = SseReader(a), SseReader(a, scope="fleet")
        readers = [own, fleet]
        for r in readers:
            r.start()
            assert await asyncio.to_thread(r.opened.wait, 30)
        # Node B's start, stored before the streams opened: in the fleet's stream only.
        await asyncio.to_thread(fleet.until, lambda evs: any(e["stream_id"] == b_id for e in evs))
        # Node B writes while both follow: the fleet's stream sees it as it commits.
        await asyncio.to_thread(_power, b, b_id, "stop")
        await asyncio.to_thread(
            fleet.until, lambda evs: any(e["stream_id"] == b_id and e["type"] == "power.succeeded" for e in evs[-20:])
        )
        # Node A writes: its own stream sees it live, and nothing of node B's came before it.
        await asyncio.to_thread(_power, a, a_id, "start")
        await asyncio.to_thread(own.until, lambda evs: any(e["type"] == "power.succeeded" for e in evs))
        assert own.events and {e["stream_id"] for e in own.events} <= {a_id, "node:node-a"}
        positions = [e["position"] for e in fleet.events]
        assert positions == sorted(set(positions))  # once each, in order
        with a.client() as c:  # node B's server: a 404 naming node B, unless asked for the fleet
            resp = c.get("/api/events/stream", params={"server": b_id})
            assert resp.status_code == 404 and "node-b" in resp.json()["error"]
    finally:
        for r in readers:
            r.done.set()
        for r in readers:
            await asyncio.to_thread(r.join, 10)
        a.stop()
        b.stop()


async def test_each_nodes_outbox_reads_its_own_events_with_its_own_cursor(pg_url):
    engine = create_engine(pg_url)
    await upgrade(engine)
    stores = {n: EventStore(engine, node_id=n) for n in ("node-a", "node-b")}
    try:
        for s in stores.values():
            await s.open()
        said = Metadata(actor="panel-user", channel=WEBSOCKET_CHANNEL)
        streams = {n: str(uuidlib.uuid4()) for n in stores}
        for _ in range(3):
            for n, s in stores.items():
                op = str(uuidlib.uuid4())
                await s.append(
                    streams[n], [NewEvent.of(PowerRequested(operation_id=op, action="start", wait_seconds=0), said)]
                )
        end = max(s.last_position for s in stores.values())
        for n in stores:
            entries, _ = await pending(engine, 0, end, 100, n)
            assert [e.stream_id for e in entries] == [streams[n]] * 3
        # The outbox's one row from before (shared by every node): each node starts from it, then
        # keeps a row of its own.
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO outbox_cursors (name, position, updated_at) VALUES ('panel-activity', 2, now())")
            )
        cursors = {n: OutboxCursor(s, "panel-activity") for n, s in stores.items()}
        for c in cursors.values():
            assert await c.load() == 2
        await cursors["node-a"].advance(5)
        assert await OutboxCursor(stores["node-a"], "panel-activity").load() == 5
        assert await OutboxCursor(stores["node-b"], "panel-activity").load() == 2
        async with engine.connect() as conn:
            rows = dict((await conn.execute(text("SELECT name, position FROM outbox_cursors"))).all())
        assert rows == {"panel-activity": 2, "panel-activity@node-a": 5}
    finally:
        for s in stores.values():
            await s.close()
        await engine.dispose()
