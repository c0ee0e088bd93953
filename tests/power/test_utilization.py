"""Resource utilization as Wings reports it, against `wingman serve`: a running local process (its
whole process group counted) and a running container on the real Docker engine show non-zero
memory and uptime; an offline server shows zeros beside its state; `GET /api/servers` carries it
for each server; the folder's size is measured in the background."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3

import pytest

from tests.support.daemon import SERVER_PYTHON, definition
from tests.support.http import power
from tests.support.waiting import eventually, eventually_async
from tests.support.websocket import authed

KEYS = {"memory_bytes", "memory_limit_bytes", "cpu_absolute", "network", "uptime", "state", "disk_bytes"}
MIB = 1024 * 1024

# A server whose child (in its process group) holds 64 MiB and burns CPU: the group's sum shows it.
PARENT_AND_CHILD = (
    f"{SERVER_PYTHON} -c \"import time; b = bytearray(64 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
    f"t = time.time() + 600\n"
    f"while time.time() < t: pass\" & echo 'Server started'; wait"
)


def utilization(d, uuid: str) -> dict:
    with d.client() as c:
        body = c.get(f"/api/servers/{uuid}").json()
    assert set(body["utilization"]) == KEYS, body
    return body["utilization"]


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon(utilization={"interval_seconds": 0.3, "disk_interval_seconds": 1})


def add(d, doc: dict) -> str:
    with d.client() as c:
        assert c.post("/api/servers", json=doc).status_code == 201
    return doc["settings"]["uuid"]


def test_an_offline_server_shows_zeros_beside_its_state(daemon):
    uuid = add(daemon, definition(build={"memory_limit": 256}))
    u = utilization(daemon, uuid)
    assert u["state"] == "offline"
    assert (u["memory_bytes"], u["cpu_absolute"], u["uptime"], u["network"]) == (
        0,
        0,
        0,
        {"rx_bytes": 0, "tx_bytes": 0},
    )
    assert u["memory_limit_bytes"] == 256 * MIB


def test_a_running_process_has_memory_and_uptime_and_goes_back_to_zeros(daemon):
    uuid = add(daemon, definition())
    op = power(daemon, uuid, "start")
    assert daemon.wait_operation(op["id"])["status"] == "succeeded"
    u = eventually(
        lambda: utilization(daemon, uuid),
        what="memory and uptime of the running server",
        until=lambda u: u["memory_bytes"] > 0 and u["uptime"] > 0,
    )
    assert u["state"] == "running" and u["cpu_absolute"] >= 0
    later = eventually(
        lambda: utilization(daemon, uuid), what="uptime growing", until=lambda v: v["uptime"] > u["uptime"]
    )
    assert later["memory_bytes"] > 0
    with daemon.client() as c:
        listed = {s["uuid"]: s for s in c.get("/api/servers").json()}
    assert set(listed[uuid]["utilization"]) == KEYS
    power(daemon, uuid, "kill")
    daemon.wait_state(uuid, "offline")
    u = utilization(daemon, uuid)
    assert (u["memory_bytes"], u["uptime"], u["cpu_absolute"]) == (0, 0, 0)


def test_the_whole_process_group_is_counted(daemon):
    uuid = add(daemon, definition(invocation=PARENT_AND_CHILD, stop={"type": "signal", "value": "SIGKILL"}))
    power(daemon, uuid, "start")
    u = eventually(
        lambda: utilization(daemon, uuid),
        what="the child's memory and CPU counted with the server",
        until=lambda u: u["memory_bytes"] >= 64 * MIB and u["cpu_absolute"] > 1,
    )
    assert u["state"] == "running"
    power(daemon, uuid, "kill")
    daemon.wait_state(uuid, "offline")


def test_the_folder_size_is_measured_in_the_background(daemon):
    doc = definition(invocation="head -c 300000 /dev/zero > blob.bin; echo 'Server started'; exec sleep 600")
    uuid = add(daemon, doc)
    power(daemon, uuid, "start")
    eventually(lambda: utilization(daemon, uuid)["disk_bytes"] >= 300_000, what="the folder's size")
    power(daemon, uuid, "kill")
    daemon.wait_state(uuid, "offline")
    assert utilization(daemon, uuid)["disk_bytes"] >= 300_000  # the folder stays with the server, as in Wings


async def test_stats_frames_come_while_running_and_zeros_after(daemon):
    uuid = add(daemon, definition())
    async with authed(daemon, uuid) as s:
        await s.send("set state", "start")
        await s.until("status", "running")
        async with asyncio.timeout(60):  # stats frames come on their own: a deadline on the first with memory
            while True:
                f = await s.until("stats")
                stats = json.loads(f[-1]["args"][0])
                if stats["memory_bytes"] > 0:
                    break
        assert stats["state"] == "running" and stats["uptime"] > 0
        await s.send("set state", "kill")
        # The last word on a stopped server is all zeros, sent once the stop is in the log: the
        # process is gone a moment before its exit is committed, and zeros never say `running`.
        zeros = offline = False
        async with asyncio.timeout(60):
            while not (zeros and offline):
                f = await s.next()
                if f["event"] == "status":
                    offline = f["args"][0] == "offline"
                elif f["event"] == "stats" and (stats := json.loads(f["args"][0]))["memory_bytes"] == 0:
                    assert (stats["state"], stats["uptime"]) == ("offline", 0)
                    zeros = True
        await s.send("send stats")
        stats = json.loads((await s.until("stats"))[-1]["args"][0])
        assert (stats["state"], stats["memory_bytes"], stats["uptime"]) == ("offline", 0, 0)


@pytest.mark.docker
def test_a_running_container_has_memory_and_uptime(daemon_process, docker_uuids, docker_image):
    uuid = docker_uuids.new()
    doc = definition(
        uuid,
        invocation="echo ready; exec sleep 600",
        done=("ready",),
        runtime="docker",
        container={"image": docker_image},
        build={"memory_limit": 64},
        stop={"type": "signal", "value": "SIGKILL"},
    )
    # network_mode none: a container on the bridge may send (IPv6 router solicitations) on its own.
    d = daemon_process(
        servers=[doc], utilization={"interval_seconds": 0.3}, docker={"network": {"network_mode": "none"}}
    )
    op = power(d, uuid, "start")
    assert d.wait_operation(op["id"])["status"] == "succeeded", d.read_log()[-3000:]
    u = eventually(
        lambda: utilization(d, uuid),
        what="the container's memory and uptime",
        until=lambda u: u["memory_bytes"] > 0 and u["uptime"] > 0,
    )
    assert u["state"] == "running" and u["memory_limit_bytes"] == 64 * MIB
    # network_mode none: the container has its own namespace with only a loopback, so no traffic.
    assert u["network"] == {"rx_bytes": 0, "tx_bytes": 0}
    op = power(d, uuid, "kill")
    d.wait_state(uuid, "offline")
    assert utilization(d, uuid)["memory_bytes"] == 0


async def test_zeros_never_say_running_while_the_exit_waits_for_its_commit(engine_harness):
    """A process that dies while the log cannot take its exit yet (another writer holds SQLite's
    lock): the sampler sees it gone, but its zeros wait for the stop's commit, and say offline."""
    d = definition()
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        assert (await h.outcome(await h.act(uuid, "start"))).status == "succeeded"
        monitor = h.daemon.utilization
        frames: list[dict] = []
        monitor.listen(uuid, frames.append)
        await monitor.sample()
        assert frames and frames[-1]["memory_bytes"] > 0 and frames[-1]["state"] == "running"

        blocker = sqlite3.connect(h.daemon.db.url.database, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the exit's commit waits behind this
        try:
            os.killpg(h.processes.handle(uuid).pid, signal.SIGKILL)  # behind the daemon's back

            await eventually_async(
                lambda: all(u != uuid for u, _ in h.processes.running()), 60, "the killed process seen gone"
            )
            assert h.state(uuid) == "running"  # not committed yet
            await monitor.sample()
            assert not [f for f in frames if f["memory_bytes"] == 0], frames[-1]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await h.wait_state(uuid, "offline")
        assert (frames[-1]["state"], frames[-1]["memory_bytes"], frames[-1]["uptime"]) == ("offline", 0, 0)
