"""The servers API over a real socket: add (201/409/422), list, read, console commands (502 when
stopped, visible in the logs when running), delete (204 whatever the state), plus
`/api/system` and the OpenAPI document."""

from __future__ import annotations

import copy
import uuid as uuidlib

import httpx
import pytest

from tests.support.daemon import definition
from tests.support.http import (
    WINGS_NOT_FOUND,
    assert_json_error,
    logs,
    power,
    processes_under,
    total_events,
)
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon()


@pytest.fixture(scope="module")
def client(daemon):
    with daemon.client() as c:
        yield c


def add(client, doc: dict) -> dict:
    resp = client.post("/api/servers", json=doc)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_add_a_server_then_the_same_again_is_409(daemon, client):
    doc = definition()
    uuid = doc["settings"]["uuid"]
    resp = client.post("/api/servers", json=doc)
    assert resp.status_code == 201, resp.text
    assert resp.headers.get("location") == f"/api/servers/{uuid}"
    body = resp.json()
    assert body["uuid"] == uuid and body["state"] == "offline" and body["version"] == 1
    assert body["configuration"]["settings"]["uuid"] == uuid

    before = total_events(daemon)
    again = client.post("/api/servers", json=doc)
    assert_json_error(again, 409)
    assert uuid in again.json()["error"]
    assert total_events(daemon) == before

    listed = client.get("/api/servers")
    assert listed.status_code == 200
    assert uuid in [s["uuid"] for s in listed.json()]
    one = client.get(f"/api/servers/{uuid}")
    assert one.status_code == 200 and one.json()["state"] == "offline"


def test_the_uuid_is_normalised_so_an_upper_case_copy_is_the_same_server(daemon, client):
    doc = definition()
    add(client, doc)
    shouted = copy.deepcopy(doc)
    shouted["settings"]["uuid"] = doc["settings"]["uuid"].upper()
    assert_json_error(client.post("/api/servers", json=shouted), 409)


def _without_uuid():
    doc = definition()
    del doc["settings"]["uuid"]
    return doc


INVALID = {
    "no-settings": {"process_configuration": {}},
    "no-uuid": _without_uuid(),
    "bad-uuid": definition(uuid="not-a-uuid"),
    "uuid-number": {"settings": {"uuid": 12345}},
    "docker-without-image": definition(runtime="docker"),
    "unknown-runtime": definition(runtime="vm"),
    "bad-env-name": definition(env={"1BAD": "x"}),
    "env-value-object": definition(env={"GOOD": {"nested": 1}}),
    "negative-stop-timeout": definition(stop_timeout=-1),
    "bad-stop-signal": {**definition(), "process_configuration": {"stop": {"type": "signal", "value": "SIGNOPE"}}},
    "command-stop-without-value": {**definition(), "process_configuration": {"stop": {"type": "command", "value": ""}}},
    "negative-memory": definition(build={"memory_limit": -5}),
}


@pytest.mark.parametrize("doc", INVALID.values(), ids=INVALID.keys())
def test_an_invalid_definition_is_422_and_writes_nothing(daemon, client, doc):
    before = total_events(daemon)
    resp = client.post("/api/servers", json=doc)
    assert_json_error(resp, 422)
    assert total_events(daemon) == before
    uuid = doc.get("settings", {}).get("uuid")
    if isinstance(uuid, str):
        assert client.get(f"/api/servers/{uuid}").status_code == 404


def test_a_deeply_nested_definition_is_refused_not_a_500(daemon, client):
    """Any JSON the body parser accepts must get a 4xx, not an internal error. (pydantic's
    serializer stops at ~255 levels with a ValueError that parse_definition does not catch.)"""
    doc = definition()
    doc["settings"]["meta"] = {"name": "deep", "x": []}
    node = doc["settings"]["meta"]["x"]
    for _ in range(400):
        node.append([])
        node = node[0]
    before = total_events(daemon)
    resp = client.post("/api/servers", json=doc)
    assert resp.status_code in (400, 422), (resp.status_code, resp.text)
    assert_json_error(resp, resp.status_code)
    assert total_events(daemon) == before


def test_commands_to_a_stopped_server_are_502_with_a_clear_message(daemon, client):
    doc = add(client, definition())
    resp = client.post(f"/api/servers/{doc['uuid']}/commands", json={"commands": ["say hi"]})
    message = assert_json_error(resp, 502)
    assert "stopped" in message.lower(), message


def test_commands_to_an_unknown_server_are_404(client):
    resp = client.post(f"/api/servers/{uuidlib.uuid4()}/commands", json={"commands": ["say hi"]})
    assert resp.json() == {"error": WINGS_NOT_FOUND}
    assert resp.status_code == 404


def test_commands_reach_a_running_server_and_show_in_its_logs(daemon, client):
    uuid = add(client, definition())["uuid"]
    assert daemon.wait_operation(power(daemon, uuid, "start")["id"])["status"] == "succeeded"
    resp = client.post(f"/api/servers/{uuid}/commands", json={"commands": ["say hi", "list"]})
    assert resp.status_code == 204, resp.text
    assert resp.headers.get("x-request-id")
    lines = eventually(
        lambda: logs(daemon, uuid),
        what="'[Server] hi' in the logs",
        until=lambda ls: any("[Server] hi" in line for line in ls),
    )
    eventually(lambda: any("players online" in line for line in logs(daemon, uuid)), what="the `list` answer")
    assert any("Server started" in line for line in lines)
    # `size` bounds the tail.
    assert len(client.get(f"/api/servers/{uuid}/logs", params={"size": 1}).json()["data"]) == 1
    assert daemon.wait_operation(power(daemon, uuid, "kill")["id"])["status"] == "succeeded"


def test_delete_a_running_server_is_204_and_gone(daemon, client):
    """As Wings answers the Panel: whatever the state (tests/panel/test_delete_as_panel.py: each step)."""
    uuid = add(client, definition())["uuid"]
    assert daemon.wait_operation(power(daemon, uuid, "start")["id"])["status"] == "succeeded"
    resp = client.delete(f"/api/servers/{uuid}")
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert resp.headers.get("x-request-id")

    assert client.get(f"/api/servers/{uuid}").json() == {"error": WINGS_NOT_FOUND}
    assert client.get(f"/api/servers/{uuid}").status_code == 404
    assert uuid not in [s["uuid"] for s in client.get("/api/servers").json()]
    assert client.post(f"/api/servers/{uuid}/power", json={"action": "start"}).status_code == 404
    assert client.delete(f"/api/servers/{uuid}").status_code == 404
    assert client.get(f"/api/servers/{uuid}/logs").status_code == 404


def test_a_deleted_server_can_be_added_again_and_started(daemon, client):
    doc = definition()
    uuid = add(client, doc)["uuid"]
    assert client.delete(f"/api/servers/{uuid}").status_code == 204
    again = add(client, doc)
    assert again["state"] == "offline"
    assert again["version"] > 2  # the same stream goes on: its history stays in the log
    assert daemon.wait_operation(power(daemon, uuid, "start")["id"])["status"] == "succeeded"
    assert daemon.wait_operation(power(daemon, uuid, "kill")["id"])["status"] == "succeeded"
    daemon.wait_state(uuid, "offline")


def test_delete_while_starting_is_204_and_the_start_cancelled(daemon, client):
    uuid = add(client, definition(env={"BOOT_SECONDS": "60"}))["uuid"]
    start = power(daemon, uuid, "start")
    daemon.wait_state(uuid, "starting")
    assert client.delete(f"/api/servers/{uuid}").status_code == 204
    assert daemon.wait_operation(start["id"])["status"] == "cancelled"
    assert client.get(f"/api/servers/{uuid}").status_code == 404


def test_system(client):
    resp = client.get("/api/system")
    assert resp.status_code == 200
    body = resp.json()
    for key in ("architecture", "cpu_count", "kernel_version", "os", "version"):
        assert key in body, body
    assert body["wingman"]["database"] == "sqlite"
    assert "process" in body["wingman"]["runtimes"]


def test_openapi_lists_the_power_path_and_needs_no_token(daemon):
    resp = httpx.get(daemon.url + "/api/openapi.json", timeout=30)
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.")
    power_paths = [p for p in doc["paths"] if p.startswith("/api/servers/") and p.endswith("/power")]
    assert power_paths, sorted(doc["paths"])
    assert "post" in doc["paths"][power_paths[0]]
    assert "/api/servers" in doc["paths"]


def test_no_server_processes_are_left_behind(daemon, client):
    """Every test above killed or stopped what it started: nothing runs under the data folder."""
    for s in client.get("/api/servers").json():
        assert s["state"] == "offline", s
    assert processes_under(daemon.folder / "var" / "volumes") == []


def test_the_system_facts_say_when_boot_is_over(daemon):
    """`settled` is what a load test (or an operator) waits for: boot recovery done and the
    heap settled, the daemon at its steady pace from then on."""
    with daemon.client() as c:
        facts = c.get("/api/system").json()["wingman"]
    assert facts["settled"] is True and facts["boot_recovery"]["done"] is True
