"""Cosigning in a fleet (docs/fleet.md): two nodes on one PostgreSQL database, each a log of its own
with its own origin, submit to the same witness written from the spec, which knows only node A's
log. A's checkpoints are cosigned; B's are refused (404: an origin it does not know), logged and
counted on B; `audit verify --witness KEY --cosignatures 1` on the shared database says how far the
witness vouches for A's log and fails naming B's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.daemon import AUDIT_TOKEN, DaemonProcess, definition
from tests.support.fleet import fleet_node
from tests.support.tlog_witness import SpecWitness, cli_verify, write_log_key
from tests.support.waiting import eventually

pytestmark = pytest.mark.postgres


def _power(d: DaemonProcess, uuid: str, *actions: str) -> None:
    with d.client() as c:
        for action in actions:
            resp = c.post(f"/api/servers/{uuid}/power", json={"action": action})
            assert resp.status_code == 202, resp.text
            assert d.wait_operation(resp.json()["id"])["status"] == "succeeded"


def _refusals(d: DaemonProcess, witness: str, status: str) -> float:
    with d.client(AUDIT_TOKEN) as c:
        text = c.get("/metrics").text
    series = f'wingman_checkpoint_witness_refusals_total{{status="{status}",witness="{witness}"}} '
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series))


async def test_a_witness_of_one_node_of_a_fleet(tmp_path: Path, pg_url: str) -> None:
    w = SpecWitness("witness.test/fleet", {"wingman/node-a": [write_log_key(tmp_path / "a", "node-a")]})
    write_log_key(tmp_path / "b", "node-b")  # B's key exists, but the witness was never told it
    audit = {
        "checkpoint_every_events": 1000,
        "checkpoint_every_seconds": 0.2,
        "witnesses": [{"url": w.serve(), "key": w.vkey}],
    }
    a_server, b_server = definition(), definition()
    a = fleet_node(tmp_path / "a", pg_url, "node-a", [a_server], audit=audit)
    b = fleet_node(tmp_path / "b", pg_url, "node-b", [b_server], audit=audit)
    try:
        await asyncio.gather(asyncio.to_thread(a.start, 60), asyncio.to_thread(b.start, 60))
        await asyncio.gather(
            asyncio.to_thread(_power, a, a_server["settings"]["uuid"], "start", "stop"),
            asyncio.to_thread(_power, b, b_server["settings"]["uuid"], "start", "stop"),
        )
        eventually(lambda: _refusals(b, w.name, "404") >= 1, 30, "node B's checkpoint refused as unknown")
        assert _refusals(a, w.name, "404") == 0
        assert "wingman/node-b" not in w.latest and w.statuses("wingman/node-b") and 404 in w.statuses("wingman/node-b")
        eventually(lambda: w.latest.get("wingman/node-a", (0,))[0] > 0, 30, "node A's checkpoint cosigned")
    finally:
        a.stop()
        b.stop()
        w.close()

    code, doc, said = await asyncio.to_thread(cli_verify, pg_url, "--witness", w.vkey, "--cosignatures", "1")
    nodes = {n["node"]: n for n in doc["cosignatures"]["nodes"]}
    assert code == 1, said
    assert nodes["node-a"]["vouched_up_to_size"] == w.latest["wingman/node-a"][0] and not nodes["node-a"]["problems"]
    assert nodes["node-b"]["vouched_up_to_size"] == 0 and "node node-b" in nodes["node-b"]["problems"][0]
    assert "witness witness.test/fleet: no cosignature that checks out" in said
