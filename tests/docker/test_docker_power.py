"""The power engine driving real Docker containers (engine_harness: an in-process Daemon on a real
SQLite file, its DockerRuntime talking to the real engine): start, stop, restart and kill.
Failures and things done behind the daemon's back are in test_docker_failures.py.

Every container is named after a uuid from `docker_uuids`, so it is removed after the test
whatever happens. Timeouts are upper bounds for waiting, never speed assertions.
"""

from __future__ import annotations

import asyncio
import io

import docker
import pytest

from tests.support.docker_power import (
    ECHO,
    STUBBORN,
    TRAP,
    WAIT,
    console_shows,
    docker_server,
    inspect,
    not_running,
    of_type,
    remove_server_container,
    sdk,
    started_running,
)
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.docker


async def test_start_reaches_running_on_the_done_line_in_a_container(
    engine_harness, docker_uuids, docker_image, docker_engine
):
    uuid = docker_uuids.new()
    invocation = "echo booting; sleep 1; echo ready; " + ECHO
    async with engine_harness([docker_server(uuid, docker_image, invocation)]) as h:
        op = await started_running(h, uuid)
        lines = list(h.processes.console(uuid).lines)
        assert lines.index("booting") < lines.index("ready")

        (started,) = await of_type(h, uuid, "process.started")
        container = await inspect(docker_engine, uuid)
        assert container is not None and container["State"]["Running"]
        assert started.data["runtime"] == "docker"
        assert started.data["container_id"] == container["Id"]
        assert started.data["adopted"] is False
        assert started.metadata["operation_id"] == op.id
        changes = [(e.data["from_state"], e.data["to_state"]) for e in await of_type(h, uuid, "state.changed")]
        assert changes == [("offline", "starting"), ("starting", "running")]
        handle = h.processes.handle(uuid)
        assert handle is not None and handle.runtime == "docker" and handle.container_id == container["Id"]

        await h.outcome(await h.act(uuid, "kill"), WAIT)


async def test_stop_by_signal_delivers_sigint_for_caret_c(engine_harness, docker_uuids, docker_image, docker_engine):
    uuid = docker_uuids.new()
    d = docker_server(uuid, docker_image, TRAP, stop={"type": "signal", "value": "^C"})  # Wings' SIGINT
    async with engine_harness([d]) as h:
        await started_running(h, uuid)
        op = await h.outcome(await h.act(uuid, "stop"), WAIT)
        assert op.status == "succeeded", op.reason
        assert h.state(uuid) == "offline"
        lines = list(h.processes.console(uuid).lines)
        assert "got INT" in lines and "got TERM" not in lines
        exited = (await of_type(h, uuid, "process.exited"))[-1]
        assert exited.data["exit_code"] == 0 and exited.data["oom_killed"] is False
        assert exited.metadata["cause"] == "stopped"
        assert await not_running(docker_engine, uuid)


async def test_stop_by_command_writes_to_the_containers_stdin(
    engine_harness, docker_uuids, docker_image, docker_engine
):
    uuid = docker_uuids.new()
    d = docker_server(uuid, docker_image, ECHO, stop={"type": "command", "value": "stop"})
    async with engine_harness([d]) as h:
        await started_running(h, uuid)
        await h.processes.handle(uuid).send_command("hello")
        await console_shows(h, uuid, "echo hello")
        op = await h.outcome(await h.act(uuid, "stop"), WAIT)
        assert op.status == "succeeded", op.reason
        assert h.state(uuid) == "offline"
        assert "bye" in h.processes.console(uuid).lines
        exited = (await of_type(h, uuid, "process.exited"))[-1]
        assert exited.data["exit_code"] == 0
        assert "power.stop_timed_out" not in await h.types(uuid)
        assert await not_running(docker_engine, uuid)


@pytest.mark.parametrize("spelling", ["native", "stop"])  # wingman's name, and Wings' name
async def test_native_stop_sends_the_containers_stop_signal(
    engine_harness, docker_uuids, docker_image, docker_engine, spelling
):
    uuid = docker_uuids.new()
    d = docker_server(uuid, docker_image, TRAP, stop={"type": spelling})
    async with engine_harness([d]) as h:
        assert h.daemon.registry.config(uuid).stop_type == "native"
        await started_running(h, uuid)
        op = await h.outcome(await h.act(uuid, "stop"), WAIT)
        assert op.status == "succeeded", op.reason
        assert h.state(uuid) == "offline"
        assert "got TERM" in h.processes.console(uuid).lines  # the busybox image has no STOPSIGNAL
        exited = (await of_type(h, uuid, "process.exited"))[-1]
        assert exited.data["exit_code"] == 0
        assert "power.stop_timed_out" not in await h.types(uuid)
        assert await not_running(docker_engine, uuid)


@pytest.mark.parametrize("stop", [{"type": "signal", "value": "SIGTERM"}, {"type": "native"}], ids=["signal", "native"])
async def test_stop_timeout_then_sigkill(engine_harness, docker_uuids, docker_image, docker_engine, stop):
    uuid = docker_uuids.new()
    d = docker_server(uuid, docker_image, STUBBORN, stop=stop, stop_timeout=2)
    async with engine_harness([d]) as h:
        await started_running(h, uuid)
        op = await h.outcome(await h.act(uuid, "stop"), WAIT)
        assert op.status == "succeeded", op.reason
        assert h.state(uuid) == "offline"
        assert "ignoring TERM" in h.processes.console(uuid).lines  # TERM arrived and was ignored
        types = await h.types(uuid)
        # An auditor must see that the stop became a kill, whichever kind of stop it was.
        assert "power.stop_timed_out" in types, f"no power.stop_timed_out for a {stop['type']} stop: {types}"
        assert types.index("power.stop_timed_out") < types.index("process.exited")
        (timed_out,) = await of_type(h, uuid, "power.stop_timed_out")
        assert timed_out.data["timeout_seconds"] == 2 and timed_out.data["operation_id"] == op.id
        exited = (await of_type(h, uuid, "process.exited"))[-1]
        assert exited.data["exit_code"] == 137
        assert await not_running(docker_engine, uuid)


async def test_restart_runs_a_new_container_and_ends_running(engine_harness, docker_uuids, docker_image, docker_engine):
    uuid = docker_uuids.new()
    d = docker_server(uuid, docker_image, TRAP, stop={"type": "signal", "value": "SIGTERM"})
    async with engine_harness([d]) as h:
        await started_running(h, uuid)
        (first,) = await of_type(h, uuid, "process.started")
        op = await h.outcome(await h.act(uuid, "restart"), WAIT)
        assert op.status == "succeeded", op.reason
        assert h.state(uuid) == "running"
        events = await h.events(uuid)
        mine = [e for e in events if e.metadata.get("operation_id") == op.id]
        assert [e.data["to_state"] for e in mine if e.type == "state.changed"] == [
            "stopping",
            "offline",
            "starting",
            "running",
        ]
        started = [e for e in events if e.type == "process.started"]
        assert len(started) == 2 and started[1].metadata["operation_id"] == op.id
        assert started[1].data["container_id"] != first.data["container_id"]
        assert started[1].data["adopted"] is False
        assert "got TERM" in h.processes.console(uuid).lines
        container = await inspect(docker_engine, uuid)
        assert container["Id"] == started[1].data["container_id"] and container["State"]["Running"]
        await h.outcome(await h.act(uuid, "kill"), WAIT)


async def test_kill_is_sigkill_now(engine_harness, docker_uuids, docker_image, docker_engine):
    uuid = docker_uuids.new()
    async with engine_harness([docker_server(uuid, docker_image, TRAP)]) as h:
        await started_running(h, uuid)
        op = await h.outcome(await h.act(uuid, "kill"), WAIT)
        assert op.status == "succeeded", op.reason
        assert h.state(uuid) == "offline"
        exited = (await of_type(h, uuid, "process.exited"))[-1]
        assert exited.data["exit_code"] == 137 and exited.data["oom_killed"] is False
        assert exited.metadata["cause"] == "killed" and exited.metadata["operation_id"] == op.id
        lines = list(h.processes.console(uuid).lines)
        assert "got TERM" not in lines and "got INT" not in lines  # no trap runs for SIGKILL
        assert await not_running(docker_engine, uuid)
        assert h.processes.handle(uuid) is None


@pytest.mark.parametrize("when", ["container_up", "at_once"])
async def test_kill_during_starting_cancels_the_start_and_stays_offline(
    engine_harness, docker_uuids, docker_image, docker_engine, when
):
    uuid = docker_uuids.new()
    async with engine_harness([docker_server(uuid, docker_image, "sleep 5; " + TRAP)]) as h:
        start = await h.act(uuid, "start")
        await h.wait_state(uuid, "starting", WAIT)
        if when == "container_up":  # the kill finds a container to kill
            await eventually_async(lambda: h.processes.handle(uuid), WAIT, "the container launched")
        # at_once: the kill lands during pre-boot or while Docker creates the container
        kill = await h.outcome(await h.act(uuid, "kill"), WAIT)
        await h.outcome(start, WAIT)
        assert kill.status == "succeeded", kill.reason
        assert start.status == "cancelled", (start.status, start.reason)
        assert h.state(uuid) == "offline"

        # A launch the kill cancelled may still be running in Docker: once it has settled (and its
        # container has been killed), nothing is left that could come up.
        await asyncio.wait_for(h.daemon.runtimes["docker"].settle(), WAIT)
        assert h.state(uuid) == "offline"
        assert "ready" not in h.processes.console(uuid).lines
        assert "running" not in [e.data["to_state"] for e in await of_type(h, uuid, "state.changed")]
        assert await not_running(docker_engine, uuid)
        assert h.processes.handle(uuid) is None


async def test_kill_during_a_stop_that_hangs(engine_harness, docker_uuids, docker_image, docker_engine):
    uuid = docker_uuids.new()
    d = docker_server(uuid, docker_image, STUBBORN, stop={"type": "signal", "value": "SIGTERM"}, stop_timeout=120)
    async with engine_harness([d]) as h:
        await started_running(h, uuid)
        stop = await h.act(uuid, "stop")
        await h.wait_state(uuid, "stopping", WAIT)
        await console_shows(h, uuid, "ignoring TERM")
        kill = await h.outcome(await h.act(uuid, "kill"), WAIT)
        await h.outcome(stop, WAIT)  # well before the 120 s stop timeout
        assert kill.status == "succeeded", kill.reason
        assert stop.status in ("succeeded", "cancelled"), (stop.status, stop.reason)
        assert h.state(uuid) == "offline"
        exited = await of_type(h, uuid, "process.exited")
        assert len(exited) == 1 and exited[0].data["exit_code"] == 137
        assert exited[0].metadata["cause"] == "killed" and exited[0].metadata["operation_id"] == kill.id
        assert "power.stop_timed_out" not in await h.types(uuid)
        assert await not_running(docker_engine, uuid)


async def test_restart_of_a_container_that_ignores_the_stop(engine_harness, docker_uuids, docker_image, docker_engine):
    uuid = docker_uuids.new()
    d = docker_server(uuid, docker_image, STUBBORN, stop={"type": "signal", "value": "SIGTERM"}, stop_timeout=2)
    async with engine_harness([d]) as h:
        await started_running(h, uuid)
        op = await h.outcome(await h.act(uuid, "restart"), WAIT)
        assert op.status == "succeeded", op.reason
        assert h.state(uuid) == "running"
        types = await h.types(uuid)
        assert types.index("power.stop_timed_out") < types.index("process.exited")
        started = await of_type(h, uuid, "process.started")
        assert len(started) == 2 and started[0].data["container_id"] != started[1].data["container_id"]
        assert (await inspect(docker_engine, uuid))["State"]["Running"]
        await h.outcome(await h.act(uuid, "kill"), WAIT)


async def test_native_stop_uses_the_images_stopsignal(engine_harness, docker_uuids, docker_base_image, docker_engine):
    uuid = docker_uuids.new()
    image = f"local/wingman-stopsignal:{uuid[:12]}"  # the test image with `STOPSIGNAL SIGINT`

    def build():
        client = sdk(docker_engine)
        try:  # a local build FROM the test image: no registry involved
            dockerfile = f"FROM {docker_base_image}\nSTOPSIGNAL SIGINT\n".encode()
            for chunk in client.build(
                fileobj=io.BytesIO(dockerfile), tag=image, rm=True, forcerm=True, pull=False, decode=True
            ):
                assert "error" not in chunk, chunk
        finally:
            client.close()

    def drop():
        client = sdk(docker_engine)
        try:
            client.remove_image(image, force=True)
        except docker.errors.NotFound:
            pass
        finally:
            client.close()

    await asyncio.to_thread(build)
    try:
        async with engine_harness([docker_server(uuid, image, TRAP, stop={"type": "stop"})]) as h:
            await started_running(h, uuid)
            op = await h.outcome(await h.act(uuid, "stop"), WAIT)
            assert op.status == "succeeded", op.reason
            lines = list(h.processes.console(uuid).lines)
            assert "got INT" in lines and "got TERM" not in lines
            assert (await of_type(h, uuid, "process.exited"))[-1].data["exit_code"] == 0
    finally:
        await asyncio.to_thread(remove_server_container, docker_engine, uuid)
        await asyncio.to_thread(drop)
