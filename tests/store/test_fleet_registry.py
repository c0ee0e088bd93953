"""A node holds its own servers only (docs/fleet.md): on one PostgreSQL database, a node that boots
after another has claimed its servers lists only its own, and so does the first after a restart;
node B's log of node A's servers is untouched."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.daemon import DaemonProcess, definition
from tests.support.fleet import fleet_node

pytestmark = pytest.mark.postgres


def _listed(d: DaemonProcess) -> set[str]:
    with d.client() as c:
        return {s["uuid"] for s in c.get("/api/servers").json()}


async def test_each_node_lists_only_its_own_servers(tmp_path, pg_url):
    a_servers, b_servers = [definition(), definition()], [definition()]
    a_ids = {s["settings"]["uuid"] for s in a_servers}
    b_ids = {s["settings"]["uuid"] for s in b_servers}
    a = fleet_node(tmp_path / "a", pg_url, "node-a", a_servers)
    b = fleet_node(tmp_path / "b", pg_url, "node-b", b_servers)
    try:
        await asyncio.to_thread(a.start, 60)
        await asyncio.to_thread(b.start, 60)  # node A's servers are in the log, claimed by node A
        assert _listed(b) == b_ids
        assert _listed(a) == a_ids  # node B's server was registered after node A booted
        with b.client() as c:
            assert c.get(f"/api/servers/{sorted(a_ids)[0]}").status_code == 404
        a.stop()
        a = fleet_node(tmp_path / "a", pg_url, "node-a", a_servers)
        await asyncio.to_thread(a.start, 60)
        assert _listed(a) == a_ids  # node B's server is in the log now: left out at boot
        with a.client() as c:
            uuid = sorted(a_ids)[0]
            resp = c.post(f"/api/servers/{uuid}/power", json={"action": "start"})
            assert resp.status_code == 202, resp.text
            assert a.wait_operation(resp.json()["id"])["status"] == "succeeded"
    finally:
        a.stop()
        b.stop()
