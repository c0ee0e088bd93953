"""Checkpoints per node (docs/fleet.md, "Each node signs its own events"): two nodes, as two
`wingman serve` processes on one PostgreSQL database, each sign a log of their own events. Their
checkpoints never collide on seq; a node that boots again resumes its own tree from its own latest
checkpoint; `wingman audit verify --database URL` checks both logs, each with its node's key; an
event of node B forged with SQL is named with node B and its position, while node A's log alone
(`--node node-a`) still checks out; and a key given for the wrong node is refused for that node."""

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


CHECKPOINT_OFTEN = {"checkpoint_every_events": 4, "checkpoint_every_seconds": 0.2}


def _node(folder: Path, pg_url: str, node_id: str, servers: list[dict]) -> DaemonProcess:
    return fleet_node(folder, pg_url, node_id, servers, audit=CHECKPOINT_OFTEN)


def _drive(d: DaemonProcess, servers: list[str]) -> None:
    with d.client() as c:
        for action in ("start", "stop", "start", "stop"):
            for uuid in servers:
                resp = c.post(f"/api/servers/{uuid}/power", json={"action": action})
                assert resp.status_code == 202, resp.text
                assert d.wait_operation(resp.json()["id"])["status"] == "succeeded"


def _tree_ready(d: DaemonProcess) -> list[dict]:
    """The daemon's 'checkpoints: tree ready' records (its log is JSON lines), oldest first."""
    found = [
        json.loads(line)
        for line in d.read_log().splitlines()
        if line.startswith("{") and '"checkpoints: tree ready"' in line
    ]
    assert found, d.read_log()[-3000:]
    return found


def _public_key(d: DaemonProcess) -> str:
    return _tree_ready(d)[-1]["public_key"]


def _audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wingman.api.cli.audit", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "TERM": "dumb"},
    )


async def test_each_node_signs_its_own_log_and_verify_names_the_node(tmp_path, pg_url):
    a_servers, b_servers = [definition(), definition()], [definition()]
    a = _node(tmp_path / "a", pg_url, "node-a", a_servers)
    b = _node(tmp_path / "b", pg_url, "node-b", b_servers)
    try:
        await asyncio.gather(asyncio.to_thread(a.start, 60), asyncio.to_thread(b.start, 60))
        await asyncio.gather(
            asyncio.to_thread(_drive, a, [s["settings"]["uuid"] for s in a_servers]),
            asyncio.to_thread(_drive, b, [s["settings"]["uuid"] for s in b_servers]),
        )
    finally:
        a.stop()
        b.stop()
    for d in (a, b):
        assert "could not be written to the database" not in d.read_log()  # no collision on seq

    rows = await fleet_sql(pg_url, "SELECT node_id, seq, body, upto_position FROM checkpoints ORDER BY node_id, seq")
    by_node: dict[str, list[int]] = {}
    for node, seq, body, _ in rows:
        assert json.loads(body)["node"] == node
        by_node.setdefault(node, []).append(seq)
    assert set(by_node) == {"node-a", "node-b"}
    for node, seqs in by_node.items():
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 2, (node, seqs)
    # Each node's last checkpoint covers exactly its own events (and the log holds both nodes').
    counts = dict(await fleet_sql(pg_url, "SELECT node_id, count(*) FROM events GROUP BY node_id"))
    last = {node: json.loads(body)["size"] for node, _, body, _ in rows}
    assert last == {"node-a": counts["node-a"], "node-b": counts["node-b"]}

    # Node A boots again: it resumes its own tree from its own latest checkpoint, not node B's.
    a2 = _node(tmp_path / "a", pg_url, "node-a", a_servers)
    try:
        await asyncio.to_thread(a2.start, 60)
        boot = _tree_ready(a2)[-1]
        assert (boot["how"], boot["events_read"], boot["size"]) == ("resumed", 0, counts["node-a"]), boot
        assert "does not agree with the latest checkpoint" not in a2.read_log()
    finally:
        a2.stop()

    keys = [f"node-a={_public_key(a)}", f"node-b={_public_key(b)}"]
    key_args = [arg for k in keys for arg in ("--key", k)]
    clean = _audit("verify", "--database", pg_url, *key_args, "--format", "json")
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    cp = json.loads(clean.stdout)["checkpoints"]
    assert [(n["node"], n["ok"], n["not_yet_covered"]) for n in cp["nodes"]] == [
        ("node-a", True, 0),
        ("node-b", True, 0),
    ]
    assert all(n["checkpoints_believed"] >= 2 and n["problems_total"] == 0 for n in cp["nodes"])
    said = _audit("verify", "--database", pg_url, *key_args)
    assert said.returncode == 0 and "node node-a: OK" in said.stdout and "node node-b: OK" in said.stdout, said.stdout

    # An event of node B's, edited with SQL: named with node B and its position.
    forged = (await fleet_sql(pg_url, "SELECT min(position) FROM events WHERE node_id = 'node-b'"))[0][0]
    await fleet_sql(
        pg_url, "UPDATE events SET data = CAST(:d AS JSON) WHERE position = :p", d='{"edited": true}', p=forged
    )
    found = _audit("verify", "--database", pg_url, *key_args, "--format", "json")
    assert found.returncode == 1, found.stdout[-3000:]
    cp = json.loads(found.stdout)["checkpoints"]
    assert (cp["first_bad_node"], cp["first_bad_position"]) == ("node-b", forged)
    assert {n["node"]: n["ok"] for n in cp["nodes"]} == {"node-a": True, "node-b": False}
    text_said = _audit("verify", "--database", pg_url, *key_args)
    assert f"node node-b, position {forged}" in text_said.stdout, text_said.stdout

    # Node A's log alone still checks out; node B's alone does not.
    only_a = _audit("verify", "--database", pg_url, "--node", "node-a", "--key", keys[0], "--format", "json")
    assert only_a.returncode == 0, only_a.stdout[-3000:]
    assert json.loads(only_a.stdout)["checkpoints"]["node"] == "node-a"
    only_b = _audit("verify", "--database", pg_url, "--node", "node-b", "--key", keys[1], "--format", "json")
    assert only_b.returncode == 1
    assert json.loads(only_b.stdout)["checkpoints"]["first_bad_position"] == forged

    # Node A's key given as node B's: node B's checkpoints are not believed, and the finding says so.
    swapped = _audit("verify", "--database", pg_url, "--key", f"node-b={_public_key(a)}", "--format", "json")
    cp = json.loads(swapped.stdout)["checkpoints"]
    key_findings = [p for p in cp["problems"] if p["check"] == "key"]
    assert key_findings and key_findings[0]["node"] == "node-b", cp["problems"]
