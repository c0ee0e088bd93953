"""The power engine against a real Docker engine when things go wrong: out of memory, a
missing image, a container removed or killed behind the daemon's back, and a deleted server
(its container goes, its history stays).

Every container is named after a uuid from `docker_uuids`, so it is removed after the test
whatever happens. Timeouts are upper bounds for waiting, never speed assertions.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.docker_power import (
    ECHO,
    TRAP,
    WAIT,
    docker_server,
    inspect,
    not_running,
    of_type,
    sdk,
    started_running,
)
from wingman.engine.environments.docker.spec import container_name
from wingman.engine.events import Metadata

pytestmark = pytest.mark.docker


async def test_out_of_memory_is_recorded_and_fails_the_start(engine_harness, docker_uuids, docker_image, docker_engine):
    uuid = docker_uuids.new()
    # `tail` keeps the whole 64 MiB "line" of zeros in memory; the OOM killer ends it, and the
    # shell (PID 1) exits with its status before the done-line.
    d = docker_server(uuid, docker_image, "echo booting; head -c 64m /dev/zero | tail", build={"memory_limit": 16})
    async with engine_harness([d]) as h:
        op = await h.outcome(await h.act(uuid, "start"), WAIT)
        assert op.status == "failed"
        assert "memory" in op.reason, op.reason
        assert h.state(uuid) == "offline"
        exited = (await of_type(h, uuid, "process.exited"))[-1]
        assert exited.data["oom_killed"] is True
        assert exited.data["exit_code"] == 137
        assert exited.metadata["operation_id"] == op.id
        container = await inspect(docker_engine, uuid)
        assert container["HostConfig"]["Memory"] == 18_400_000  # Wings' 16 MB + 15 % overhead
        assert container["State"]["OOMKilled"] is True and not container["State"]["Running"]


async def test_missing_image_fails_the_start_with_its_name(engine_harness, docker_uuids, docker_engine):
    uuid = docker_uuids.new()
    image = "local/wingman-no-such-image:missing"
    async with engine_harness([docker_server(uuid, image, TRAP)]) as h:
        op = await h.outcome(await h.act(uuid, "start"), WAIT)
        assert op.status == "failed"
        assert image in op.reason, op.reason
        assert h.state(uuid) == "offline"
        (failed,) = await of_type(h, uuid, "preboot.check_failed")
        assert failed.data["check"] == "environment" and image in failed.data["reason"]
        assert failed.data["operation_id"] == op.id
        changes = [(e.data["to_state"], e.data["trigger"]) for e in await of_type(h, uuid, "state.changed")]
        assert changes == [("starting", "start"), ("offline", "abort")]
        assert "process.started" not in await h.types(uuid)
        assert await inspect(docker_engine, uuid) is None  # nothing was created


async def test_container_removed_behind_the_daemons_back(engine_harness, docker_uuids, docker_image, docker_engine):
    uuid = docker_uuids.new()
    async with engine_harness([docker_server(uuid, docker_image, TRAP)]) as h:
        await started_running(h, uuid)
        (started,) = await of_type(h, uuid, "process.started")

        def remove():
            client = sdk(docker_engine)
            try:
                client.remove_container(started.data["container_id"], force=True)
            finally:
                client.close()

        await asyncio.to_thread(remove)

        await h.wait_state(uuid, "offline", WAIT)
        exited = (await of_type(h, uuid, "process.exited"))[-1]
        assert exited.data["reason"] == "container removed", exited.data
        assert exited.metadata["cause"] == "exited"
        (change,) = [e for e in await of_type(h, uuid, "state.changed") if e.data["to_state"] == "offline"]
        assert change.data["from_state"] == "running" and change.data["cause"] == "exited"
        assert h.processes.handle(uuid) is None

        # And the server can be started again: a fresh container.
        await started_running(h, uuid)
        again = (await of_type(h, uuid, "process.started"))[-1]
        assert again.data["container_id"] != started.data["container_id"]
        await h.outcome(await h.act(uuid, "kill"), WAIT)


async def test_out_of_memory_after_ready_takes_the_server_offline(engine_harness, docker_uuids, docker_image):
    uuid = docker_uuids.new()
    d = docker_server(
        uuid, docker_image, "echo ready; sleep 1; head -c 64m /dev/zero | tail", build={"memory_limit": 16}
    )
    async with engine_harness([d]) as h:
        await started_running(h, uuid)
        await h.wait_state(uuid, "offline", WAIT)
        exited = (await of_type(h, uuid, "process.exited"))[-1]
        assert exited.data["oom_killed"] is True and exited.data["exit_code"] == 137
        assert exited.metadata["cause"] == "exited"
        (change,) = [e for e in await of_type(h, uuid, "state.changed") if e.data["to_state"] == "offline"]
        assert change.data["from_state"] == "running" and change.data["cause"] == "exited"


async def test_container_killed_behind_the_daemons_back_is_a_crash(
    engine_harness, docker_uuids, docker_image, docker_engine
):
    uuid = docker_uuids.new()
    async with engine_harness([docker_server(uuid, docker_image, TRAP)]) as h:
        await started_running(h, uuid)

        def kill():
            client = sdk(docker_engine)
            try:
                client.kill(container_name(uuid), signal="SIGKILL")
            finally:
                client.close()

        await asyncio.to_thread(kill)

        await h.wait_state(uuid, "offline", WAIT)
        exited = (await of_type(h, uuid, "process.exited"))[-1]
        assert exited.data["exit_code"] == 137 and exited.data["reason"] is None
        assert exited.metadata["cause"] == "exited" and exited.metadata.get("operation_id") is None
        # The stopped container is still there (for inspection), but the daemon holds no handle.
        assert await not_running(docker_engine, uuid)
        assert h.processes.handle(uuid) is None


async def test_deleting_a_server_removes_its_container_and_keeps_its_history(
    engine_harness, docker_uuids, docker_image, docker_engine
):
    uuid = docker_uuids.new()
    async with engine_harness([docker_server(uuid, docker_image, ECHO)]) as h:
        await started_running(h, uuid)
        await h.outcome(await h.act(uuid, "stop"), WAIT)
        assert await inspect(docker_engine, uuid) is not None  # a stopped container stays until delete
        await h.power.delete_server(uuid, Metadata(actor="test"))
        assert await inspect(docker_engine, uuid) is None
        assert "server.deleted" in await h.types(uuid)  # its files are removed after it, in the background
