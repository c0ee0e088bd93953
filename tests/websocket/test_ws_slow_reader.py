"""A websocket client that stops reading: its bounded outbox overflows and it is closed with the
reason, while appends go on and another socket on the same server gets every frame."""

from __future__ import annotations

import asyncio
import socket as sockets

import pytest
from websockets.asyncio.client import connect

from tests.support.daemon import SERVER_PYTHON, definition, shared_file
from tests.support.http import power, stored_events
from tests.support.waiting import eventually
from tests.support.websocket import FRAME_TIMEOUT, Socket, authed, token, ws_url

LINES = 1500  # 12 MB: under the local console's skip-ahead bound (16 MiB behind), so nothing is skipped
FLOOD = f"""
import sys
print("Server started", flush=True)
for command in sys.stdin:
    if command.strip() == "flood":
        for i in range({LINES}):
            sys.stdout.write(f"{{i}} " + "x" * 8000 + "\\n")
        print("flood done", flush=True)
"""


@pytest.fixture
def flooding(daemon_process):
    script = shared_file("flood.py", FLOOD)
    server = definition(invocation=f"{SERVER_PYTHON} -u {script}")
    d = daemon_process(servers=[server], websocket={"queue_frames": 256})
    return d, server["settings"]["uuid"]


async def test_a_slow_reader_is_closed_without_stalling_appends_or_other_sockets(flooding):
    d, uuid = flooding
    raw = sockets.create_connection(("127.0.0.1", d.port))
    # A fixed window (no autotuning up to tens of MiB), larger than loopback's segment size so that
    # reading it later is quick: what the client does not read backs up to the daemon soon.
    raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 256 * 1024)
    async with (
        connect(ws_url(d, uuid), sock=raw, max_queue=1, open_timeout=FRAME_TIMEOUT) as slow_ws,
        authed(d, uuid) as good,
    ):
        slow = Socket(slow_ws, uuid)
        await slow.auth(token(uuid))
        power(d, uuid, "start")
        assert await good.statuses(2) == ["starting", "running"]
        # From here on the slow client reads nothing until the daemon says it closed it.
        await good.send("send command", "flood")

        async def good_reads_everything():
            frames = await good.until("console output", "flood done")
            return [
                int(f["args"][0].split()[0])
                for f in frames
                if f["event"] == "console output" and f["args"][0] != "flood done"
            ]

        async def slow_is_closed():
            await asyncio.to_thread(
                eventually, lambda: "reads too slowly" in d.read_log(), 120, "the slow socket to be closed"
            )
            return await slow.closed()

        def appends_go_on():
            with d.client() as c:
                return [
                    c.post(f"/api/servers/{uuid}/ws/deny", json={"jtis": [f"jti-{i}"]}).status_code for i in range(20)
                ]

        numbers, closed, statuses = await asyncio.gather(
            good_reads_everything(), slow_is_closed(), asyncio.to_thread(appends_go_on)
        )
        assert numbers == list(range(LINES)), "the other socket got every line"
        assert statuses == [204] * 20
        assert len([e for e in stored_events(d, uuid) if e["type"] == "server.websocket_tokens_denied"]) == 20
        power(d, uuid, "stop")
        assert await good.statuses(2) == ["stopping", "offline"]
    assert closed.rcvd is not None and closed.rcvd.code == 1013, closed
    assert "reads too slowly" in closed.rcvd.reason
