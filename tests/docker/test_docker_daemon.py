"""The whole daemon (`wingman serve` in a subprocess, real HTTP) with Docker servers: containers
outlive a daemon restart and are adopted by the next daemon, and an unreachable engine fails a
start clearly without taking the daemon down.

Every container is named after a uuid from `docker_uuids`, so it is removed after the test
whatever happens. Timeouts are upper bounds for waiting, never speed assertions.
"""

from __future__ import annotations

import docker
import pytest

from tests.support.daemon import definition
from tests.support.docker_engine import inspect_server_container
from tests.support.waiting import eventually
from wingman.engine.environments.docker.spec import container_name

WAIT = 60

ECHO = 'echo ready; while read line; do [ "$line" = stop ] && { echo bye; exit 0; }; echo "echo $line"; done'

pytestmark = pytest.mark.docker


def docker_server(uuid: str, image: str, invocation: str = ECHO) -> dict:
    return definition(
        uuid,
        invocation=invocation,
        done=("ready",),
        runtime="docker",
        container={"image": image},
        stop={"type": "command", "value": "stop"},
    )


inspect = inspect_server_container


def power(daemon, uuid: str, action: str) -> dict:
    """POST /power and wait for the operation's outcome."""
    with daemon.client() as c:
        r = c.post(f"/api/servers/{uuid}/power", json={"action": action})
    assert r.status_code == 202, r.text
    return daemon.wait_operation(r.json()["id"], WAIT)


def events(daemon, uuid: str) -> list[dict]:
    out, after = [], 0
    with daemon.client() as c:
        while after is not None:
            r = c.get(f"/api/servers/{uuid}/events", params={"after": after, "limit": 1000})
            assert r.status_code == 200, r.text
            body = r.json()
            out += body["events"]
            after = body["next_after"]
    return out


def wait_log_line(daemon, uuid: str, text: str, timeout: float = WAIT) -> list[str]:
    with daemon.client() as c:

        def lines() -> list[str]:
            r = c.get(f"/api/servers/{uuid}/logs", params={"size": 1000})
            assert r.status_code == 200, r.text
            return r.json()["data"]

        return eventually(
            lines,
            timeout,
            f"{text!r} in the logs of {uuid}",
            interval=0.1,
            until=lambda ls: any(text in line for line in ls),
        )


def test_a_restarted_daemon_adopts_a_running_container(daemon_process, docker_uuids, docker_image, docker_engine):
    uuid = docker_uuids.new()
    servers = [docker_server(uuid, docker_image)]
    first = daemon_process(servers=servers)
    op = power(first, uuid, "start")
    assert op["status"] == "succeeded", op
    first.wait_state(uuid, "running", WAIT)
    before = events(first, uuid)
    (started,) = [e for e in before if e["type"] == "process.started"]
    container_id = started["data"]["container_id"]
    assert started["data"]["runtime"] == "docker" and container_id

    first.stop()  # SIGTERM: the daemon goes, Docker servers stay up
    assert first.proc.returncode == 0, first.read_log()[-3000:]
    container = inspect(docker_engine, uuid)
    assert container is not None and container["State"]["Running"], "the container died with the daemon"
    assert container["Id"] == container_id

    second = daemon_process(servers=servers, folder=first.folder)  # same config, same event store
    body = second.wait_state(uuid, "running", WAIT)
    assert body["state"] == "running"
    after = events(second, uuid)[len(before) :]
    # No fresh container: the same one, recorded as adopted at boot, and nothing else changed.
    assert inspect(docker_engine, uuid)["Id"] == container_id
    started_again = [e for e in after if e["type"] == "process.started"]
    assert len(started_again) == 1, after
    assert started_again[0]["data"]["adopted"] is True
    assert started_again[0]["data"]["container_id"] == container_id
    assert started_again[0]["metadata"]["cause"] == "boot_recovery"
    assert not [e for e in after if e["type"] in ("state.changed", "process.exited", "power.interrupted")], after

    # The console reaches the new daemon: a command in, its answer in the logs.
    with second.client() as c:
        r = c.post(f"/api/servers/{uuid}/commands", json={"commands": ["after the restart"]})
    assert r.status_code == 204, r.text
    wait_log_line(second, uuid, "echo after the restart")

    op = power(second, uuid, "stop")
    assert op["status"] == "succeeded", op
    second.wait_state(uuid, "offline", WAIT)
    assert "bye" in wait_log_line(second, uuid, "bye")
    exited = [e for e in events(second, uuid) if e["type"] == "process.exited"]
    assert len(exited) == 1 and exited[0]["data"]["exit_code"] == 0
    assert exited[0]["metadata"]["cause"] == "stopped"
    assert not inspect(docker_engine, uuid)["State"]["Running"]

    # And the adopted server's history verifies end to end.
    with second.client() as c:
        r = c.get("/api/audit/verify")
    assert r.status_code == 200 and r.json().get("ok") is True, r.text


def test_an_unreachable_docker_engine_fails_the_start_clearly(daemon_process, docker_uuids, docker_image):
    uuid = docker_uuids.new()
    local = definition()  # a local process server on the same node still works
    host = "unix:///tmp/no-such-docker.sock"
    d = daemon_process(servers=[docker_server(uuid, docker_image), local], docker={"host": host})

    for _ in range(2):  # and again: nothing is stuck after the first failure
        op = power(d, uuid, "start")
        assert op["status"] == "failed", op
        assert "Docker engine" in op["reason"] and host in op["reason"], op["reason"]
        assert d.wait_state(uuid, "offline", WAIT)["state"] == "offline"

    failed = [e for e in events(d, uuid) if e["type"] == "preboot.check_failed"]
    assert len(failed) == 2 and all(e["data"]["check"] == "environment" for e in failed)
    assert "process.started" not in [e["type"] for e in events(d, uuid)]

    with d.client() as c:
        assert c.get("/api/system").status_code == 200
    local_uuid = local["settings"]["uuid"]
    op = power(d, local_uuid, "start")
    assert op["status"] == "succeeded", op
    op = power(d, local_uuid, "stop")
    assert op["status"] == "succeeded", op
    d.stop()
    assert d.proc.returncode == 0, d.read_log()[-3000:]


@pytest.mark.parametrize("gone", ["exited", "removed"])
def test_a_container_that_ended_while_the_daemon_was_down_is_recorded_at_boot(
    daemon_process, docker_uuids, docker_image, docker_engine, gone
):
    uuid = docker_uuids.new()
    servers = [docker_server(uuid, docker_image)]
    first = daemon_process(servers=servers)
    assert power(first, uuid, "start")["status"] == "succeeded"
    first.stop()

    client = docker.APIClient(base_url=docker_engine, version="auto", timeout=60)
    try:
        if gone == "exited":
            client.kill(container_name(uuid), signal="SIGKILL")
            client.wait(container_name(uuid), timeout=WAIT)
        else:
            client.remove_container(container_name(uuid), force=True)
    finally:
        client.close()

    second = daemon_process(servers=servers, folder=first.folder)
    second.wait_state(uuid, "offline", WAIT)
    (exited,) = [e for e in events(second, uuid) if e["type"] == "process.exited"]
    assert exited["metadata"]["cause"] == "boot_recovery"
    if gone == "exited":
        assert exited["data"]["exit_code"] == 137 and exited["data"]["oom_killed"] is False
    else:
        assert exited["data"]["reason"] == "container removed"
    assert not [e for e in events(second, uuid) if e["type"] == "process.started" and e["data"]["adopted"]]
    # A fresh start works after that.
    assert power(second, uuid, "start")["status"] == "succeeded"
    assert power(second, uuid, "kill")["status"] == "succeeded"


def test_a_start_interrupted_by_a_daemon_restart_ends_running(
    daemon_process, docker_uuids, docker_image, docker_engine
):
    uuid = docker_uuids.new()
    servers = [docker_server(uuid, docker_image, "sleep 8; " + ECHO)]  # a slow done-line
    first = daemon_process(servers=servers)
    with first.client() as c:
        r = c.post(f"/api/servers/{uuid}/power", json={"action": "start"})
    assert r.status_code == 202
    start_id = r.json()["id"]
    eventually(  # the container, so there is something to adopt
        lambda: events(first, uuid),
        WAIT,
        "the container started",
        until=lambda evs: any(e["type"] == "process.started" for e in evs),
    )
    assert first.wait_state(uuid, "starting", 5)["state"] == "starting"
    first.stop()
    assert inspect(docker_engine, uuid)["State"]["Running"]

    second = daemon_process(servers=servers, folder=first.folder)
    second.wait_state(uuid, "running", WAIT)
    op = second.wait_operation(start_id, WAIT)
    assert op["status"] == "interrupted", op
    started = [e for e in events(second, uuid) if e["type"] == "process.started"]
    assert [e["data"]["adopted"] for e in started] == [False, True]
    assert started[0]["data"]["container_id"] == started[1]["data"]["container_id"]
    with second.client() as c:
        assert c.post(f"/api/servers/{uuid}/commands", json={"commands": ["hi"]}).status_code == 204
    wait_log_line(second, uuid, "echo hi")
    assert power(second, uuid, "stop")["status"] == "succeeded"
    second.wait_state(uuid, "offline", WAIT)


def test_a_stop_interrupted_by_a_daemon_restart_is_finished_at_boot(
    daemon_process, docker_uuids, docker_image, docker_engine
):
    uuid = docker_uuids.new()
    stubborn = "trap 'echo ignoring TERM' TERM; echo ready; while true; do sleep 1 & wait $!; done"
    d = definition(
        uuid,
        invocation=stubborn,
        done=("ready",),
        runtime="docker",
        container={"image": docker_image},
        stop={"type": "signal", "value": "SIGTERM"},
        stop_timeout=120,
    )
    first = daemon_process(servers=[d])
    assert power(first, uuid, "start")["status"] == "succeeded"
    with first.client() as c:
        r = c.post(f"/api/servers/{uuid}/power", json={"action": "stop"})
    assert r.status_code == 202
    stop_id = r.json()["id"]
    first.wait_state(uuid, "stopping", WAIT)
    wait_log_line(first, uuid, "ignoring TERM")
    first.stop()  # the container is left running, mid-stop
    assert inspect(docker_engine, uuid)["State"]["Running"]

    second = daemon_process(servers=[d], folder=first.folder)
    second.wait_state(uuid, "offline", WAIT)  # it was asked to stop: the next daemon finishes the job
    assert second.wait_operation(stop_id, WAIT)["status"] == "interrupted"
    exited = [e for e in events(second, uuid) if e["type"] == "process.exited"]
    assert len(exited) == 1 and exited[0]["data"]["exit_code"] == 137
    assert exited[0]["metadata"]["cause"] == "boot_recovery"
    assert not inspect(docker_engine, uuid)["State"]["Running"]
