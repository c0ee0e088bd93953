"""The websocket against `wingman serve` with real processes: `status` frames are exactly the
committed state changes (start, stop, restart, kill, and rapid actions from HTTP and the socket
mixed), power actions over the socket are recorded with the token's user, lock contention, console
commands and output, errors with ids, deletion closing the socket, and the socket limits."""

from __future__ import annotations

import asyncio
import re
import uuid as uuidlib

import pytest
from websockets.exceptions import InvalidStatus

from tests.support.http import add_server, power, stored_events
from tests.support.waiting import eventually
from tests.support.websocket import authed, socket, token

GENEROUS = {
    name: {"burst": 1000, "every": 0.001}
    for name in ("global", "auth", "set state", "send command", "send logs", "send stats")
}
USER = "5d2c9a1e-0b3f-4c7d-8e9f-a1b2c3d4e5f6"


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon(
        websocket={"rate_limits": GENEROUS, "max_sockets_per_server": 3}, utilization={"interval_seconds": 0.5}
    )


def changes_after(d, uuid: str, version: int) -> list[str]:
    """The to_state of every state.changed the log holds after `version`: the truth to compare to."""
    return [
        e["data"]["to_state"] for e in stored_events(d, uuid) if e["version"] > version and e["type"] == "state.changed"
    ]


def version(d, uuid: str) -> int:
    return stored_events(d, uuid)[-1]["version"]


async def settle(d, uuid: str) -> None:
    """Wait (without a fixed sleep) until no operation of the server is open."""

    def idle():
        with d.client() as c:
            return c.get(f"/api/servers/{uuid}").json()["operation_in_flight"] is None and not [
                e
                for e in stored_events(d, uuid)
                if e["type"] == "power.requested"
                and not any(
                    o["type"] in ("power.succeeded", "power.failed", "power.rejected", "power.cancelled")
                    and o["data"]["operation_id"] == e["data"]["operation_id"]
                    for o in stored_events(d, uuid)
                )
            ]

    await asyncio.to_thread(eventually, idle, 120, "the server to settle")


async def test_start_stop_restart_kill_as_exact_status_sequences(daemon):
    uuid = add_server(daemon)
    async with authed(daemon, uuid, user=USER) as s:
        start = version(daemon, uuid)
        power(daemon, uuid, "start")  # over HTTP
        assert await s.statuses(2) == ["starting", "running"]
        # Each next action once the last one has its outcome, so that the frames and the log are
        # compared over whole operations (actions sent back at once have their own test below).
        await settle(daemon, uuid)
        await s.send("set state", "stop")  # over the socket
        assert await s.statuses(2) == ["stopping", "offline"]
        await settle(daemon, uuid)
        await s.send("set state", "start")
        assert await s.statuses(2) == ["starting", "running"]
        await settle(daemon, uuid)
        await s.send("set state", "restart")
        assert await s.statuses(4) == ["stopping", "offline", "starting", "running"]
        await s.send("set state", "kill")
        assert await s.statuses(1) == ["offline"]
        await settle(daemon, uuid)
        assert [f["args"][0] for f in await s.quiet() if f["event"] == "status"] == []
        seen = [f["args"][0] for f in s.frames if f["event"] == "status"][1:]  # after the one at auth
        assert seen == changes_after(daemon, uuid, start), "status frames are the committed changes, in order"
    requests = [e for e in stored_events(daemon, uuid) if e["type"] == "power.requested"]
    by_socket = [e for e in requests if e["metadata"]["channel"] == "websocket"]
    assert [e["data"]["action"] for e in by_socket] == ["stop", "start", "restart", "kill"]
    assert all(e["metadata"]["actor"] == USER and e["metadata"]["cause"] == "operator" for e in by_socket)
    assert requests[0]["metadata"]["channel"] == "http"


async def _first_of(s, events: tuple[str, ...]) -> dict:
    while True:
        f = await s.next()
        if f["event"] in events:
            return f


async def test_the_next_action_sent_the_moment_the_state_arrives_is_taken(daemon):
    """A Panel's console offers the next action once the socket shows the state. An operation's
    work ends at the commit of a start's `ready` or a stop's or kill's exit; from then on the
    socket no longer counts its lock as busy, so an action sent back at once waits for the
    hand-over at its outcome instead of being refused with "another power action is being
    processed" (which the socket answers while an operation's work is still going on)."""
    uuid = add_server(daemon)
    expected = {
        "start": ["starting", "running"],
        "stop": ["stopping", "offline"],
        "kill": ["offline"],
        "restart": ["stopping", "offline", "starting", "running"],
    }
    plan = ["start", "stop", "start", "kill", "start", "restart", "stop", "start", "restart", "kill"]
    async with authed(daemon, uuid) as s:
        for action in plan:
            await s.send("set state", action)  # the moment the last state is read, no waiting
            answer = await _first_of(s, ("status", "daemon error"))
            assert (answer["event"], answer["args"][0]) == ("status", expected[action][0]), (action, answer)
            assert await s.statuses(len(expected[action]) - 1) == expected[action][1:], action
    await settle(daemon, uuid)
    log = stored_events(daemon, uuid)
    outcomes = [
        (e["type"], e["data"]["action"])
        for e in log
        if e["type"].startswith("power.") and e["type"] not in ("power.requested", "power.started")
    ]
    assert sorted(outcomes) == sorted(("power.succeeded", a) for a in plan), outcomes
    # The lock still changed hands only at outcomes: in the log, no operation takes it between
    # another's power.started and that one's outcome.
    holder = None
    for e in log:
        op = e["data"].get("operation_id")
        if e["type"] == "power.started" and e["data"].get("lock_acquired", True):
            assert holder is None, f"{e['data']['action']} {op} took the lock while {holder} held it"
            holder = op
        elif e["type"].startswith("power.") and e["type"] not in ("power.requested", "power.started") and op == holder:
            holder = None


async def test_rapid_actions_from_http_and_the_socket_mixed_are_each_seen_once_in_order(daemon):
    uuid = add_server(daemon, env={"BOOT_SECONDS": "0.05"})
    async with authed(daemon, uuid) as watcher, authed(daemon, uuid) as actor:
        start = version(daemon, uuid)
        plan = [
            "start",
            "kill",
            "start",
            "restart",
            "kill",
            "start",
            "stop",
            "start",
            "kill",
            "start",
            "restart",
            "kill",
        ]
        for i, action in enumerate(plan):
            if i % 2:
                await actor.send("set state", action)
            else:
                await asyncio.to_thread(power, daemon, uuid, action)
        await settle(daemon, uuid)
        await watcher.quiet()  # every frame committed before the probe has arrived
        truth = changes_after(daemon, uuid, start)
        seen = [f["args"][0] for f in watcher.frames if f["event"] == "status"][1:]
        assert len(truth) >= 2, truth  # how many depends on where the kills land; the order is the point
        assert seen == truth, (seen, truth)
        await actor.quiet()
        assert [f["args"][0] for f in actor.frames if f["event"] == "status"][1:] == truth


async def test_lock_contention_over_the_socket_is_refused_at_once_and_a_kill_still_goes(daemon):
    uuid = add_server(daemon, env={"BOOT_SECONDS": "120"})  # a start that holds the lock for long
    async with authed(daemon, uuid) as s:
        op = power(daemon, uuid, "start")
        assert await s.statuses(1) == ["starting"]
        before = len([e for e in stored_events(daemon, uuid) if e["type"] == "power.requested"])
        for action in ("stop", "restart", "start"):
            await s.send("set state", action)
            f = await s.until("daemon error")
            assert re.fullmatch(
                r"Error Event \[[0-9a-f-]{36}\]: another power action is currently being processed "
                r"for this server, please try again later",
                f[-1]["args"][0],
            ), f
        assert len([e for e in stored_events(daemon, uuid) if e["type"] == "power.requested"]) == before
        await s.send("set state", "kill")  # a kill needs no lock: it preempts the start
        assert await s.statuses(1) == ["offline"]
    assert daemon.wait_operation(op["id"])["status"] == "cancelled"


async def test_send_command_reaches_the_process_and_its_output_comes_back(daemon):
    uuid = add_server(daemon)
    async with authed(daemon, uuid) as s:
        await s.send("set state", "start")
        seen = await s.until("status", "running")
        assert any(f["event"] == "console output" and "[Pterodactyl Daemon]:" in f["args"][0] for f in seen), (
            "pre-boot notes go out as Wings sends them: console output, prefixed"
        )
        assert {"event": "console output", "args": ["Server started"]} in seen
        word = uuidlib.uuid4().hex
        await s.send("send command", f"say {word}")
        await s.until("console output", f"[Server] {word}")
        await s.send("send logs")
        lines = await s.until("console output", f"[Server] {word}")
        assert {"event": "console output", "args": ["Server started"]} in lines
        await s.send("send command", "bad\ncommand")
        f = await s.until("daemon error")
        assert "line break" in f[-1]["args"][0]
        await s.send("set state", "kill")
        await s.statuses(1)
        await s.send("send command", "say nobody hears")
        f = await s.until("daemon error")
        assert f[-1]["args"][0].endswith("Cannot send commands to a stopped server instance.")


@pytest.mark.parametrize("admin", [False, True])
async def test_an_unexpected_error_has_an_id_and_its_text_only_for_admins(daemon, admin):
    # The server closes its standard input and never reads again: once its console input is full
    # (the FIFO and the daemon's bounded backlog), the write fails, an unexpected error.
    uuid = add_server(daemon, invocation="exec 0<&-; echo 'Server started'; exec sleep 600")
    perms = ["*", "admin.websocket.errors"] if admin else ["*"]
    async with authed(daemon, uuid, permissions=perms) as s:
        await s.send("set state", "start")
        await s.until("status", "running")
        error = None
        for _ in range(40):
            await s.send("send command", "anyone there " + "x" * 12_000)
            frames = await s.quiet()
            error = next((f for f in frames if f["event"] == "daemon error"), None)
            if error:
                break
        assert error is not None, s.frames
        m = re.fullmatch(r"Error Event \[([0-9a-f-]{36})\]: (.*)", error["args"][0])
        assert m, error
        if admin:
            assert "did not take the command" in m[2]
        else:
            assert m[2] == "an unexpected error was encountered while handling this request"
        eventually(lambda: m[1] in daemon.read_log(), what="the error id in the daemon's log")
        await s.send("set state", "kill")
        await s.statuses(1)


async def test_deleting_the_server_closes_its_sockets(daemon):
    uuid = add_server(daemon)
    async with authed(daemon, uuid) as s:
        with daemon.client() as c:
            assert c.delete(f"/api/servers/{uuid}").status_code == 204
        closed = await s.closed()
    assert closed.rcvd is not None and closed.rcvd.code == 1001 and closed.rcvd.reason == "server deleted"


async def test_sockets_per_server_are_limited_before_the_upgrade(daemon):
    uuid = add_server(daemon)
    async with socket(daemon, uuid), socket(daemon, uuid), socket(daemon, uuid) as third:
        await third.auth(token(uuid))
        with pytest.raises(InvalidStatus) as refused:
            async with socket(daemon, uuid):
                pass
        assert refused.value.response.status_code == 429

    # The slots are given back when the sockets close.
    async def opens():
        async with socket(daemon, uuid) as s:
            await s.auth(token(uuid))

    await opens()


async def test_a_frame_over_the_size_limit_closes_the_socket(daemon):
    uuid = add_server(daemon)
    async with authed(daemon, uuid) as s:
        await s.send("send command", "x" * 20_000)
        closed = await s.closed()
    assert closed.rcvd is not None and closed.rcvd.code == 1009


async def test_malformed_frames_are_answered_and_the_socket_stays(daemon):
    uuid = add_server(daemon)
    async with authed(daemon, uuid) as s:
        for raw in ("not json", "[1,2]", '{"event": 5}', '{"event": "send stats", "args": [1]}'):
            await s.ws.send(raw)
            f = await s.next()
            assert f["event"] == "daemon error", (raw, f)
        await s.ws.send(b"\x00binary")
        assert (await s.next())["event"] == "daemon error"
        await s.send("no such event")
        assert "not an event" in (await s.next())["args"][0]
        assert await s.quiet() == []


async def test_inbound_messages_over_the_rate_are_throttled_and_the_socket_stays(daemon_process):
    d = daemon_process()  # the default limits
    uuid = add_server(d)
    async with authed(d, uuid) as s:
        for _ in range(8):
            await s.send("send stats")
        got = [await s.next() for _ in range(8)]
        assert {"event": "throttled", "args": ["send stats"]} in got, got
        assert [f["event"] for f in got[:3]] == ["stats"] * 3  # the burst
        await s.send("auth", token(uuid))  # another event's bucket: still served
        assert await s.until("auth success")
