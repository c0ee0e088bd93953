"""A real daemon's log has one structured line when a power operation is accepted and one when it
settles, each with the operation id, the server, the action and who asked (and the outcome and why
on the second), so an operator watching the log sees the node work."""

from __future__ import annotations

import json
import time

from tests.support.daemon import definition


def log_lines(d) -> list[dict]:
    """The daemon's JSON log lines (its log goes to a file, so structlog writes JSON)."""
    out = []
    for line in d.read_log().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def lines_of(d, operation_id: str, count: int, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in log_lines(d) if line.get("operation_id") == operation_id]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_each_operation_is_one_line_accepted_and_one_settled(daemon_process):
    s, broken = definition(), definition(invocation="/bin/sh -c 'exit 3'")
    uuid = s["settings"]["uuid"]
    d = daemon_process(servers=[s, broken])
    with d.client() as c:
        start = c.post(f"/api/servers/{uuid}/power", json={"action": "start"}).json()
        assert d.wait_operation(start["id"])["status"] == "succeeded"
        kill = c.post(f"/api/servers/{uuid}/power", json={"action": "kill"}).json()
        assert d.wait_operation(kill["id"])["status"] == "succeeded"
        failing = c.post(f"/api/servers/{broken['settings']['uuid']}/power", json={"action": "start"}).json()
        outcome = d.wait_operation(failing["id"])
    assert outcome["status"] == "failed" and outcome["reason"]

    for op, action in ((start, "start"), (kill, "kill")):
        accepted, settled = lines_of(d, op["id"], 2)
        assert accepted["event"] == "power operation accepted" and accepted["level"] == "info"
        assert settled["event"] == "power operation settled"
        for line in (accepted, settled):
            # the operator's token (node-token), not the daemon that saw the process exit
            assert (line["server"], line["action"], line["actor"]) == (uuid, action, accepted["actor"])
            assert line["actor"] not in (None, "daemon", "system")
        assert settled["outcome"] == "succeeded" and settled["seconds"] >= 0
    assert lines_of(d, kill["id"], 2)[1]["reason"] == "killed"

    accepted, settled = lines_of(d, failing["id"], 2)
    assert (accepted["server"], settled["server"]) == (broken["settings"]["uuid"],) * 2
    assert (settled["action"], settled["outcome"], settled["reason"]) == ("start", "failed", outcome["reason"])
