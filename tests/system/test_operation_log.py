"""A real daemon's log has one structured line when a power operation is accepted and one when it
settles, each with the operation id, the server, the action and who asked (and the outcome and why
on the second), so an operator watching the log sees the node work."""

from __future__ import annotations

import asyncio
import json

from tests.support.daemon import definition, opened_store
from tests.support.waiting import eventually
from wingman.engine.events import Metadata, NewEvent, PowerRequested, PowerSucceeded
from wingman.engine.live.operation_log import OperationLog


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
    """The daemon's log lines about the operation, once there are `count` of them."""
    return eventually(
        lambda: [line for line in log_lines(d) if line.get("operation_id") == operation_id],
        timeout,
        f"{count} log line(s) about operation {operation_id}",
        until=lambda found: len(found) >= count,
    )


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


class Recorder:
    """A structlog-like logger that keeps what it is told, or fails when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.lines: list[tuple[str, dict]] = []
        self.fail = fail

    def info(self, message: str, **fields) -> None:
        if self.fail:
            raise OSError("the log's disk is full")
        self.lines.append((message, fields))

    def exception(self, message: str, **fields) -> None:
        self.lines.append((message, fields))


async def test_the_writer_never_waits_on_the_log_and_a_failing_log_stops_nothing(tmp_path):
    meta = Metadata(actor="node-token", channel="http", operation_id="op-1")
    batch = [
        NewEvent.of(PowerRequested(operation_id="op-1", action="start", wait_seconds=30), meta),
        NewEvent.of(PowerSucceeded(operation_id="op-1", action="start", detail="running"), meta),
    ]
    async with opened_store(f"sqlite+aiosqlite:///{tmp_path / 'wingman.db'}") as store:
        good, broken = Recorder(), Recorder(fail=True)
        written_during_commit: list[int] = []
        store.subscribe(OperationLog(broken))
        store.subscribe(OperationLog(good))
        # a subscriber after them, inside the writer's commit: no line has been written yet
        store.subscribe(lambda events: written_during_commit.append(len(good.lines)))

        recorded = await store.append("srv-1", batch)
        assert written_during_commit == [0]
        await asyncio.sleep(0)
        assert [m for m, _ in good.lines] == ["power operation accepted", "power operation settled"]
        assert good.lines[1][1] | {"seconds": None} == {
            "operation_id": "op-1",
            "server": "srv-1",
            "action": "start",
            "actor": "node-token",
            "channel": "http",
            "outcome": "succeeded",
            "reason": "running",
            "position": recorded[1].position,
            "seconds": None,
        }
        # The broken log lost its lines, and nothing else: the store goes on appending.
        assert broken.lines == []
        more = await store.append(
            "srv-1", [NewEvent.of(PowerRequested(operation_id="op-2", action="stop", wait_seconds=0), meta)]
        )
        assert more[0].version == 3
