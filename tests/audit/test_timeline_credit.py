"""The timeline says who did what, as the event log does: a change caused by a power operation is
credited to whoever asked for the operation (its power.requested), not to the daemon that recorded
it, and every step of a restart says it was a restart. A real daemon, real HTTP requests, and the
CLI reading its database."""

from __future__ import annotations

import json

import pytest

from tests.support.daemon import definition
from tests.support.diagrams import wingman
from tests.support.http import database_path

SERVER = definition()
UUID = SERVER["settings"]["uuid"]


@pytest.fixture(scope="module")
def operated(module_daemon):
    d = module_daemon(servers=[SERVER])
    ops = {}
    with d.client() as c:
        for action in ("start", "restart", "kill"):
            op = c.post(f"/api/servers/{UUID}/power", json={"action": action}).json()
            assert d.wait_operation(op["id"])["status"] == "succeeded", action
            ops[action] = op["id"]
    return database_path(d), ops


def test_a_kill_is_the_operators_and_a_restart_says_so_at_each_step(operated):
    db, ops = operated
    r = wingman("audit", "timeline", UUID, "-d", str(db), "-F", "json")
    assert r.returncode == 0, r.stderr
    ended = [(row["state"], row["ended_by"]) for row in json.loads(r.stdout) if row["ended_by"]]
    by_op = {}
    for state, e in ended:
        by_op.setdefault(e["operation_id"], []).append((state, e["trigger"]))

    kill = next(e for _, e in ended if e["operation_id"] == ops["kill"])
    assert (kill["trigger"], kill["cause"], kill["action"]) == ("exited", "killed", "kill")
    assert (kill["actor"], kill["channel"]) == ("node-token", "http")  # who asked
    assert kill["recorded_by"] == {"actor": "daemon", "channel": "internal"}  # who saw the exit

    assert by_op[ops["restart"]] == [
        ("running", "stop"),
        ("stopping", "exited"),
        ("offline", "start"),
        ("starting", "ready"),
    ]
    restart = [e for _, e in ended if e["operation_id"] == ops["restart"]]
    assert {(e["action"], e["actor"], e["channel"]) for e in restart} == {("restart", "node-token", "http")}

    words = {row["state"] + " " + row["why_it_ended"] for row in json.loads(r.stdout)}
    assert "running exited: it was killed (kill asked by node-token)" in words
    assert "stopping exited: it was stopped (restart asked by node-token)" in words


def test_the_timeline_diagram_credits_the_asker(operated):
    db, _ = operated
    r = wingman("diagram", "timeline", UUID, "-d", str(db))
    assert r.returncode == 0, r.stderr
    arrows = [line.strip() for line in r.stdout.decode().splitlines() if "->>" in line]
    assert len(arrows) == 7  # start, ready; the restart's four; the kill's exit
    assert arrows[-1].startswith("running->>offline:")
    assert arrows[-1].endswith("exited: it was killed (kill asked by node-token) via http")
    assert [a.split(": ", 1)[0] for a in arrows if a.endswith("(restart asked by node-token) via http")] == [
        "running->>stopping",
        "stopping->>offline",
        "offline->>starting",
        "starting->>running",
    ]
    assert "by daemon" not in r.stdout.decode()
