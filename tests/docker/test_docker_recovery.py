"""Boot recovery against a real Docker engine that is out of reach when the daemon boots: the
server is not written off; it is reconciled from the container's facts once the engine is back."""

import pytest

from tests.support.daemon import definition
from tests.support.docker_engine import SocketProxy
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.docker
READY_LOOP = 'echo ready; while read line; do [ "$line" = stop ] && exit 0; echo "said $line"; done'


async def test_engine_down_at_boot_defers_then_adopts(
    engine_harness, docker_engine, docker_image, docker_uuids, tmp_path
):
    uuid = docker_uuids.new()
    d = definition(
        uuid,
        invocation=READY_LOOP,
        done=("ready",),
        runtime="docker",
        container={"image": docker_image},
        stop={"type": "command", "value": "stop"},
    )
    proxy = SocketProxy(docker_engine.removeprefix("unix://"))
    await proxy.up()
    d_via_proxy = {"url": f"unix://{proxy.path}"}
    try:
        first = engine_harness([d])
        first.daemon.runtimes["docker"].base_url = d_via_proxy["url"]
        await first.daemon.start()
        assert (await first.outcome(await first.act(uuid, "start"))).status == "succeeded"
        started = await first.until_event(uuid, lambda e: e.type == "process.started")
        await first.daemon.stop()  # docker servers outlive the daemon
        await proxy.down()

        second = engine_harness([d])
        second.daemon.runtimes["docker"].base_url = d_via_proxy["url"]
        async with second as h:
            assert h.daemon.recovered["deferred"] == 1
            assert h.state(uuid) == "running"  # not written off while nobody can tell
            assert "process.exited" not in await h.types(uuid)
            before = (await h.events(uuid))[-1].position
            await proxy.up()

            # Wait on the event, not on the handle: the handle is tracked a moment before the
            # adoption is in the log.
            adopted = await h.until_event(uuid, lambda e: e.type == "process.started" and e.position > before)
            assert adopted.data["adopted"] is True
            assert adopted.data["container_id"] == started.data["container_id"]
            assert h.processes.handle(uuid) is not None
            await h.processes.handle(uuid).send_command("hello")

            await eventually_async(
                lambda: "said hello" in h.processes.console(uuid).lines, 30, "the adopted container's answer"
            )
            assert (await h.outcome(await h.act(uuid, "stop"))).status == "succeeded"
            assert h.state(uuid) == "offline"
    finally:
        await proxy.down()
