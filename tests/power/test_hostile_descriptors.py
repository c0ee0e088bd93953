"""A game server process gets nothing of the daemon: no descriptor beyond stdin, stdout and stderr
(no socket, no file of the event store, no pipe of another server), whichever event loop runs,
and the daemon can always come back on its port while servers an earlier daemon started run on.

Its three streams are its own: its stdin FIFO and its console file, under
`<run directory>/<uuid>/` (files, so that the server outlives the daemon)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest
import uvloop

from tests.conftest import TEST_META
from tests.support.daemon import TOKEN, DaemonProcess, definition, kill_leftovers
from tests.support.http import power, processes_under
from tests.support.waiting import eventually
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon

# Ready once its own command runs: before that, the server's shell still holds descriptor 3 for
# a moment, the server's own variables (engine.environments.local.runtime), which it closes first.
SLEEPER = dict(invocation="echo ready; exec sleep 1000", done=("ready",), stop={"type": "signal", "value": "SIGTERM"})


def descriptors(pid: int) -> dict[int, str]:
    fd_dir = Path(f"/proc/{pid}/fd")
    out = {}
    for entry in fd_dir.iterdir():
        try:
            out[int(entry.name)] = os.readlink(entry)
        except FileNotFoundError:
            continue
    return out


def assert_only_standard_streams(pid: int, run_directory: Path, uuid: str) -> None:
    fds = descriptors(pid)
    assert sorted(fds) == [0, 1, 2], f"pid {pid} holds descriptors beyond the standard streams: {fds}"
    own = run_directory / uuid
    assert fds == {0: str(own / "stdin"), 1: str(own / "console.log"), 2: str(own / "console.log")}, fds


def test_a_server_of_the_real_daemon_holds_only_its_three_streams(daemon_process):
    """`wingman serve` runs Sanic on uvloop: its listening socket is inheritable, and the
    daemon holds client sockets, the SQLite files and other servers' pipes."""
    first, second = definition(**SLEEPER), definition(**SLEEPER)
    d = daemon_process(servers=[first, second])
    ids = [first["settings"]["uuid"], second["settings"]["uuid"]]
    with httpx.Client(base_url=d.url, headers=d.headers, timeout=30) as keepalive:
        keepalive.get("/api/system")  # an open client connection the daemon holds while servers start
        for uuid in ids:
            assert d.wait_operation(power(d, uuid, "start")["id"])["status"] == "succeeded"
        volumes = d.folder / "var" / "volumes"
        pids = {uuid: eventually(lambda u=uuid: processes_under(volumes / u), what="a server process") for uuid in ids}
        for uuid in ids:
            for pid in pids[uuid]:
                assert_only_standard_streams(pid, d.config().run_directory, uuid)
        assert keepalive.get("/api/system").status_code == 200


def _in_process_check(tmp_path: Path, loop_factory) -> None:
    servers = [definition(**SLEEPER), definition(**SLEEPER)]
    config = parse_config({"token": TOKEN, "system": {"root_directory": str(tmp_path / "var")}, "servers": servers})

    async def scenario() -> None:
        daemon = Daemon(config)
        await daemon.start()
        try:
            for doc in servers:
                uuid = doc["settings"]["uuid"]
                op = await daemon.power.request(uuid, "start", None, TEST_META)
                await asyncio.wait_for(daemon.power.settled(op.id), 60)
                assert op.status == "succeeded", (op.status, op.reason)
            for doc in servers:
                uuid = doc["settings"]["uuid"]
                for pid in processes_under(config.data_directory / uuid):
                    assert_only_standard_streams(pid, config.run_directory, uuid)
        finally:
            await daemon.stop()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(scenario())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_servers_hold_only_their_streams_whichever_loop_runs(tmp_path, loop):
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    try:
        _in_process_check(tmp_path, factory)
    finally:
        kill_leftovers(tmp_path)


def test_the_daemon_comes_back_on_its_port_while_its_servers_run(tmp_path):
    """SIGKILL the daemon (as an OOM kill or a crash would) with a server running, start it
    again on the same port: it binds and answers, and adopts the server, which ran on."""
    server = definition(**SLEEPER)
    uuid = server["settings"]["uuid"]
    first = DaemonProcess(tmp_path / "node", servers=[server]).start()
    try:
        assert first.wait_operation(power(first, uuid, "start")["id"])["status"] == "succeeded"
        # The launch wrapper and the server it runs as its own user.
        pids = eventually(lambda: processes_under(first.folder / "var" / "volumes" / uuid), what="the server")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(30)
        assert all(Path(f"/proc/{pid}").exists() for pid in pids), "the server must outlive the daemon here"
        again = DaemonProcess(tmp_path / "node", servers=[server], port=first.port).start()
        try:
            with again.client() as c:
                assert c.get("/api/system").status_code == 200
                assert c.get(f"/api/servers/{uuid}").json()["state"] == "running"
            assert processes_under(first.folder / "var" / "volumes" / uuid) == pids
        finally:
            again.stop()
    finally:
        first.stop()
        kill_leftovers(tmp_path)
