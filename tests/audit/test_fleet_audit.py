"""Auditing a fleet (docs/fleet.md, "Auditing a fleet"): two nodes, as two `wingman serve`
processes on one PostgreSQL database, each driving its own servers. The CLI's fleet summary names
both nodes with their servers and a clean verification; node A's API answers for node B's server
when asked for the fleet; history and export name each event's node; and an event forged with SQL
is named with its node and position by `audit verify` and by the fleet summary (CLI and API)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, definition
from tests.support.fleet import fleet_node, fleet_sql

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
BORDERS = str.maketrans({c: " " for c in "│┃┏┓┗┛┡┩┠┨━─┳┻╇╈┼┬┴└┘┌┐├┤"})


def _drive(d: DaemonProcess, servers: list[str]) -> None:
    """Start then stop each server through the node's API, waiting for each outcome."""
    with d.client() as c:
        for action in ("start", "stop"):
            for uuid in servers:
                resp = c.post(f"/api/servers/{uuid}/power", json={"action": action})
                assert resp.status_code == 202, resp.text
                body = d.wait_operation(resp.json()["id"])
                assert body["status"] == "succeeded", body


def audit(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """`wingman audit ...` as a process, its tables at a terminal this wide."""
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli.audit", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": str(columns), "TERM": "dumb"},
    )


async def test_a_fleet_audited_from_the_cli_and_from_any_node(tmp_path, pg_url):
    a_servers, b_servers = [definition(), definition()], [definition(), definition()]
    a_ids = sorted(s["settings"]["uuid"] for s in a_servers)
    b_ids = sorted(s["settings"]["uuid"] for s in b_servers)
    a = fleet_node(tmp_path / "a", pg_url, "node-a", a_servers)
    b = fleet_node(tmp_path / "b", pg_url, "node-b", b_servers)
    try:
        await asyncio.to_thread(a.start, 60)
        await asyncio.to_thread(b.start, 60)
        await asyncio.gather(asyncio.to_thread(_drive, a, a_ids), asyncio.to_thread(_drive, b, b_ids))

        # The CLI's fleet summary: both nodes, their servers, their last event, a clean verification.
        r = audit("fleet", "--database", pg_url, "--format", "json")
        assert r.returncode == 0, r.stdout + r.stderr
        summary = json.loads(r.stdout)
        nodes = {n["node"]: n for n in summary["nodes"]}
        assert summary["ok"] is True and set(nodes) == {"node-a", "node-b"}, r.stdout
        assert nodes["node-a"]["servers"] == a_ids and nodes["node-b"]["servers"] == b_ids
        last_positions = dict(await fleet_sql(pg_url, "SELECT node_id, max(position) FROM events GROUP BY node_id"))
        for name, n in nodes.items():
            assert n["verify"]["ok"] is True and n["verify"]["problems_total"] == 0, n
            assert n["verify"]["streams_checked"] >= 2
            assert n["checkpoints"]["node"] == name and n["checkpoints"]["ok"] is True, n  # its own log of them
            assert n["last_event"]["position"] <= last_positions[name]  # the daemons may have written since
            assert n["last_event"]["time"].endswith("Z")
        table = audit("fleet", "--database", pg_url, "--format", "table")
        assert table.returncode == 0, table.stderr
        lines = table.stdout.translate(BORDERS).splitlines()
        assert max(len(line.rstrip()) for line in lines) <= 80, table.stdout
        for name, servers in (("node-a", a_ids), ("node-b", b_ids)):
            row = next(line.split() for line in lines if line.split()[:1] == [name])
            assert row[1] == "2" and row[-1] == "OK", table.stdout  # node, servers, events, last event, verify
            assert all(s in table.stdout for s in servers)

        # Node A's API: node B's server is node B's (a 404 naming it) unless asked for the fleet.
        with a.client() as c:
            mine = c.get(f"/api/servers/{b_ids[0]}/events")
            assert mine.status_code == 404 and "belongs to node node-b" in mine.text, mine.text
            fleet = c.get(f"/api/servers/{b_ids[0]}/events", params={"scope": "fleet", "limit": 1000})
            assert fleet.status_code == 200, fleet.text
            events = fleet.json()["events"]
            types = [e["type"] for e in events]
            assert types[0] == "server.registered" and types.count("power.succeeded") == 2, types
            assert {e["node"] for e in events} == {"node-b"} and {e["server"] for e in events} == {b_ids[0]}
            state = c.get(f"/api/servers/{b_ids[0]}/state", params={"scope": "fleet"})
            assert state.status_code == 200 and state.json()["node"] == "node-b", state.text
            # Its own log by default, every node's with the fleet's scope, one node's with `node`.
            own = c.get("/api/events", params={"limit": 1000}).json()["events"]
            assert own and {e["node"] for e in own} == {"node-a"}
            every = c.get("/api/events", params={"limit": 1000, "scope": "fleet"}).json()["events"]
            assert {e["node"] for e in every} == {"node-a", "node-b"}
            of_b = c.get("/api/events", params={"limit": 1000, "node": "node-b"}).json()["events"]
            assert of_b == [e for e in every if e["node"] == "node-b"]
            # Its own verification compares the live state of its own servers only: node B's are on node B.
            verified = c.get("/api/audit/verify").json()
            assert verified["live_state_checked"] is True and verified["problems"] == [], verified
            answer = c.get("/api/audit/fleet")
            assert answer.status_code == 200, answer.text
            assert {n["node"]: n["servers"] for n in answer.json()["nodes"]} == {"node-a": a_ids, "node-b": b_ids}
            assert answer.json()["ok"] is True

        # History and export through the CLI: node B's server, each event with its node.
        r = audit("history", b_ids[1], "--database", pg_url, "--format", "ndjson")
        assert r.returncode == 0, r.stderr
        history = [json.loads(line) for line in r.stdout.splitlines()]
        assert history and {h["node"] for h in history} == {"node-b"}
        r = audit("export", "--database", pg_url, "--node", "node-b")
        assert r.returncode == 0, r.stderr
        exported = [json.loads(line) for line in r.stdout.splitlines()]
        assert {e["node_id"] for e in exported} == {"node-b"} and set(b_ids) <= {e["stream_id"] for e in exported}
        (count,) = (await fleet_sql(pg_url, "SELECT count(*) FROM events WHERE node_id = 'node-b'"))[0]
        assert len(exported) <= count  # node B may have written more since
        unknown = audit("export", "--database", pg_url, "--node", "node-z")
        assert unknown.returncode == 2 and "no node node-z" in unknown.stderr and "node-a, node-b" in unknown.stderr

        # Forge one of node B's events: its data edited with SQL.
        ((forged,),) = await fleet_sql(
            pg_url,
            "SELECT min(position) FROM events WHERE node_id = 'node-b' AND type = 'power.requested' AND stream_id = :s",
            s=b_ids[1],
        )
        await fleet_sql(
            pg_url,
            "UPDATE events SET data = jsonb_set(data::jsonb, '{wait_seconds}', '99')::json WHERE position = :p",
            p=forged,
        )
        r = audit("verify", "--database", pg_url)
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"node node-b, server {b_ids[1]}" in r.stdout and f"at position {forged}" in r.stdout, r.stdout
        r = audit("verify", "--database", pg_url, "--format", "json")
        first = json.loads(r.stdout)["first_problem"]
        assert (first["node"], first["position"], first["check"]) == ("node-b", forged, "hash"), first
        r = audit("verify", "--database", pg_url, "--node", "node-a")
        assert r.returncode == 0, r.stdout  # node A's streams are untouched

        r = audit("fleet", "--database", pg_url, "--format", "json")
        assert r.returncode == 1, r.stdout + r.stderr
        nodes = {n["node"]: n for n in json.loads(r.stdout)["nodes"]}
        assert nodes["node-a"]["verify"]["ok"] is True
        problem = nodes["node-b"]["verify"]["first_problem"]
        assert nodes["node-b"]["verify"]["ok"] is False and (problem["node"], problem["position"]) == (
            "node-b",
            forged,
        )
        table = audit("fleet", "--database", pg_url, "--format", "table")
        assert table.returncode == 1
        said = " ".join(table.stdout.split())  # the problem's line wraps at 80 columns
        assert "node-b: 2 server(s)" in said and f"first problem: node node-b, server {b_ids[1]}, v" in said, said
        assert f"at position {forged} (power.requested): [hash]" in said, said
        with a.client() as c:
            answer = c.get("/api/audit/fleet").json()
            assert answer["ok"] is False
            by_node = {n["node"]: n["verify"] for n in answer["nodes"]}
            assert by_node["node-a"]["ok"] is True and by_node["node-b"]["first_problem"]["position"] == forged
            verified = c.get("/api/audit/verify", params={"scope": "fleet"}).json()
            assert verified["first_problem"]["node"] == "node-b" and verified["first_problem"]["position"] == forged
    finally:
        for d in (b, a):
            await asyncio.to_thread(d.stop)
