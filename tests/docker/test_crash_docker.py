"""Crash handling for containers on the real Docker engine: an OOM kill is a crash, recorded as
such, restarted by the policy, and a second one in the window gives up."""

from __future__ import annotations

import pytest

from tests.support.docker_power import WAIT, docker_server, of_type
from wingman.engine.power.crashes import CRASH_ACTOR

pytestmark = pytest.mark.docker

# Ready at once; on any input line, `tail` holds a 64 MiB "line" of zeros and the OOM killer ends it.
HUNGRY = "echo ready; read x; head -c 64m /dev/zero | tail"


async def test_an_oom_kill_is_a_crash_restarted_then_given_up(
    engine_harness, docker_uuids, docker_image, docker_engine
):
    uuid = docker_uuids.new()
    d = docker_server(
        uuid,
        docker_image,
        HUNGRY,
        build={"memory_limit": 16},
        restart_policy={"policy": "on-failure", "max_restarts": 1, "backoff_initial": 0.1},
    )
    async with engine_harness([d], system={"crash_detection": {"timeout": 0}}) as h:
        assert (await h.outcome(await h.act(uuid, "start"), WAIT)).status == "succeeded"
        await h.processes.send_command(uuid, "eat")
        first = await h.until_event(uuid, lambda e: e.type == "crash.decided", WAIT)
        crashed = (await of_type(h, uuid, "server.crashed"))[-1]
        assert crashed.data["oom_killed"] is True and crashed.data["exit_code"] == 137
        assert first.data["restart"] is True and first.data["crash_event_id"] == crashed.event_id
        restart = await h.until_event(
            uuid, lambda e: e.type == "power.requested" and e.metadata.get("actor") == CRASH_ACTOR, WAIT
        )
        op = await h.outcome(h.daemon.registry.operation_in_memory(restart.data["operation_id"]), WAIT)
        assert op.status == "succeeded" and h.state(uuid) == "running"  # a new container, up again
        await h.processes.send_command(uuid, "eat")
        second = await h.until_event(uuid, lambda e: e.type == "crash.decided" and e.version > first.version, WAIT)
        assert second.data["restart"] is False
        assert second.data["reason"].startswith("not restarting: 2 crashes in 10 min")
        assert h.state(uuid) == "offline"
