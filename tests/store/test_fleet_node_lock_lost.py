"""A daemon that loses its node id (docs/fleet.md, "One daemon per node id"): its lock's database
session ends (as a database restart or failover ends it) and another process takes the node id
meanwhile. The daemon refuses power requests with a 503 naming the holder, and accepts them again
once the other lets go and it holds its node id again; reads go on answering throughout."""

from __future__ import annotations

import asyncio

import pytest

from tests.store.test_fleet_node_lock import _holders, _terminate
from tests.support.daemon import DaemonProcess, definition
from tests.support.waiting import eventually
from wingman.engine.fleet.node_lock import NodeTaken, PostgresNodeLock

pytestmark = pytest.mark.postgres


def _power(d: DaemonProcess, uuid: str, action: str):
    with d.client() as c:
        return c.post(f"/api/servers/{uuid}/power", json={"action": action})


async def test_a_daemon_without_its_node_id_refuses_power_until_it_holds_it_again(tmp_path, pg_url):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = DaemonProcess(tmp_path / "a", servers=[server], extra_config={"node_id": "node-a", "database": {"url": pg_url}})
    intruder = PostgresNodeLock(pg_url, "node-a", check_every=60)
    try:
        await asyncio.to_thread(d.start, 60)
        [pid] = await _holders(pg_url, "node-a")
        await _terminate(pg_url, pid)  # the daemon's lock session ends, as in a database restart
        for _ in range(200):  # the other process takes the node id as soon as it is free
            try:
                await intruder.take()
                break
            except NodeTaken:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("the node id was never free to take")

        # The daemon finds its session gone at its next check, and the node id taken: it says so.
        await asyncio.to_thread(
            eventually,
            lambda: "taken by another daemon while its lock was lost" in d.read_log(),
            30,
            "the daemon to see its node id taken",
        )
        refused = _power(d, uuid, "start")
        assert refused.status_code == 503, refused.text
        said = refused.json()["error"]
        assert "lost its node id 'node-a'" in said and "power requests are refused" in said, said
        assert "wingman pid" in said  # who holds it now (this test's process, named as a daemon names itself)
        with d.client() as c:
            assert c.get(f"/api/servers/{uuid}").status_code == 200  # reads go on

        await intruder.release()
        accepted = await asyncio.to_thread(
            eventually,
            lambda: _power(d, uuid, "start"),
            30,
            "a power request accepted",
            until=lambda r: r.status_code == 202,
        )
        assert d.wait_operation(accepted.json()["id"])["status"] == "succeeded"
        assert len(await _holders(pg_url, "node-a")) == 1
    finally:
        await intruder.release()
        d.stop()
