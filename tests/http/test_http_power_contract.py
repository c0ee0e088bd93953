"""The Wings power endpoint's contract table (DESIGN.md), row by row, over a real socket:
404 / 400 / 422 / suspended 400 / 202, X-Request-Id everywhere, and refusals that write nothing."""

from __future__ import annotations

import uuid as uuidlib

import pytest

from tests.support.daemon import definition
from tests.support.http import (
    WINGS_BAD_ACTION,
    WINGS_NOT_FOUND,
    WINGS_SUSPENDED,
    assert_json_error,
    server_version,
    stored_events,
)

SERVER = definition()
UUID = SERVER["settings"]["uuid"]
SUSPENDED = definition(suspended=True)
SUSPENDED_UUID = SUSPENDED["settings"]["uuid"]
POWER = f"/api/servers/{UUID}/power"


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon(servers=[SERVER, SUSPENDED])


# -- 404 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", [str(uuidlib.uuid4()), "not-a-uuid", UUID.upper(), "0"])
def test_unknown_server_is_404_with_the_wings_message(client, unchanged, server):
    resp = client.post(f"/api/servers/{server}/power", json={"action": "start"})
    assert_json_error(resp, 404, WINGS_NOT_FOUND)
    assert resp.json() == {"error": WINGS_NOT_FOUND}


def test_unknown_server_is_404_even_with_a_bad_body(client, unchanged):
    """As in Wings, the server is looked up before the body is read."""
    resp = client.post(f"/api/servers/{uuidlib.uuid4()}/power", content=b"{not json")
    assert resp.json() == {"error": WINGS_NOT_FOUND}
    assert resp.status_code == 404


# -- 400 -------------------------------------------------------------------------------------------

BAD_BODIES = {
    "missing": None,
    "empty": b"",
    "not-json": b"{action: start}",
    "truncated": b'{"action": "start"',
    "not-utf8": b'{"action": "\xff\xfe"}',
    "json-null": b"null",
    "json-list": b'["start"]',
    "json-string": b'"start"',
    "json-number": b"5",
    "no-action": b'{"wait_seconds": 5}',
    "action-number": b'{"action": 5}',
    "action-null": b'{"action": null}',
    "action-list": b'{"action": ["start"]}',
    "wait-string": b'{"action": "start", "wait_seconds": "5"}',
    "wait-float": b'{"action": "start", "wait_seconds": 1.5}',
    "wait-whole-float": b'{"action": "start", "wait_seconds": 5.0}',
    "wait-true": b'{"action": "start", "wait_seconds": true}',
    "wait-false": b'{"action": "start", "wait_seconds": false}',
    "wait-nan": b'{"action": "start", "wait_seconds": NaN}',
    "wait-infinity": b'{"action": "start", "wait_seconds": 1e400}',
    "wait-object": b'{"action": "start", "wait_seconds": {}}',
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_body_is_400(client, unchanged, body):
    kwargs = {} if body is None else {"content": body}
    resp = client.post(POWER, headers={"Content-Type": "application/json"}, **kwargs)
    assert_json_error(resp, 400)


# -- 422 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["jump", "", "START", "Start", " start", "start ", "reboot", "kil"])
def test_unknown_action_is_422_with_the_wings_message(client, unchanged, action):
    resp = client.post(POWER, json={"action": action})
    assert_json_error(resp, 422, WINGS_BAD_ACTION)
    assert resp.json() == {"error": WINGS_BAD_ACTION}


# -- suspended -------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["start", "restart"])
def test_start_or_restart_of_a_suspended_server_is_400_and_recorded(daemon, client, action):
    before = server_version(daemon, SUSPENDED_UUID)
    resp = client.post(f"/api/servers/{SUSPENDED_UUID}/power", json={"action": action})
    assert_json_error(resp, 400, WINGS_SUSPENDED)
    assert resp.json() == {"error": WINGS_SUSPENDED}
    # The refusal is part of the history: a request and its rejection, nothing else.
    assert server_version(daemon, SUSPENDED_UUID) == before + 2
    events = stored_events(daemon, SUSPENDED_UUID)[before:]
    assert [e["type"] for e in events] == ["power.requested", "power.rejected"]
    requested, rejected = events
    assert requested["data"]["action"] == action
    assert rejected["data"]["operation_id"] == requested["data"]["operation_id"]
    assert rejected["data"]["reason"] == WINGS_SUSPENDED
    # ... and the rejected operation can be read back by its id.
    op = client.get(f"/api/operations/{requested['data']['operation_id']}").json()
    assert op["status"] == "rejected" and op["action"] == action
    # ... and nothing started.
    assert client.get(f"/api/servers/{SUSPENDED_UUID}").json()["state"] == "offline"


@pytest.mark.parametrize("action", ["stop", "kill"])
def test_stop_and_kill_are_accepted_on_a_suspended_server(daemon, client, action):
    resp = client.post(f"/api/servers/{SUSPENDED_UUID}/power", json={"action": action})
    assert resp.status_code == 202, resp.text
    assert daemon.wait_operation(resp.json()["id"])["status"] == "succeeded"


# -- 202 -------------------------------------------------------------------------------------------


def test_accepted_is_202_with_the_operation_and_its_location(daemon, client):
    before = server_version(daemon, UUID)
    resp = client.post(POWER, json={"action": "kill"})  # kill of an offline server: harmless
    assert resp.status_code == 202, resp.text
    assert resp.headers.get("content-type", "").startswith("application/json")
    assert resp.headers.get("x-request-id")
    op = resp.json()
    assert op["server"] == UUID and op["action"] == "kill"
    assert op["status"] in {"queued", "running", "succeeded"}
    uuidlib.UUID(op["id"])
    assert resp.headers["location"] == f"/api/operations/{op['id']}"
    assert op["links"]["self"] == f"/api/operations/{op['id']}"
    # Durable before acknowledged: the request is in the store when the 202 arrives.
    assert any(
        e["type"] == "power.requested" and e["data"]["operation_id"] == op["id"]
        for e in stored_events(daemon, UUID)[before:]
    )
    follow = client.get(resp.headers["location"])
    assert follow.status_code == 200 and follow.json()["id"] == op["id"]
    assert daemon.wait_operation(op["id"])["status"] == "succeeded"


def test_extra_keys_in_the_body_are_ignored(daemon, client):
    resp = client.post(POWER, json={"action": "kill", "signal": "SIGTERM", "foo": [1, 2]})
    assert resp.status_code == 202, resp.text
    daemon.wait_operation(resp.json()["id"])


# -- wait_seconds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given,expected",
    [
        (None, 30),
        (-1, 30),
        (-300, 30),
        (301, 30),
        (10**30, 30),
        (0, 0),
        (1, 1),
        (300, 300),
    ],
)
def test_wait_seconds_defaults_to_30_when_absent_or_out_of_range(daemon, client, given, expected):
    body = {"action": "kill"} if given is None else {"action": "kill", "wait_seconds": given}
    resp = client.post(POWER, json=body)
    assert resp.status_code == 202, resp.text
    assert resp.json()["wait_seconds"] == expected
    op = daemon.wait_operation(resp.json()["id"])
    assert op["wait_seconds"] == expected


def test_explicit_null_wait_seconds_is_absent(daemon, client):
    resp = client.post(POWER, json={"action": "kill", "wait_seconds": None})
    assert resp.status_code == 202, resp.text
    assert resp.json()["wait_seconds"] == 30
    daemon.wait_operation(resp.json()["id"])


# -- X-Request-Id ----------------------------------------------------------------------------------

EVERY_KIND = [
    ("POST", POWER, {"json": {"action": "kill"}}, 202),
    ("POST", POWER, {"content": b"nope"}, 400),
    ("POST", POWER, {"json": {"action": "jump"}}, 422),
    ("POST", f"/api/servers/{uuidlib.uuid4()}/power", {"json": {"action": "kill"}}, 404),
    ("POST", f"/api/servers/{SUSPENDED_UUID}/power", {"json": {"action": "start"}}, 400),
    ("GET", POWER, {}, 405),
    ("GET", "/api/nothing-here", {}, 404),
    ("GET", "/api/system", {}, 200),
]


@pytest.mark.parametrize("method,path,kwargs,status", EVERY_KIND, ids=[f"{m}-{s}" for m, _, _, s in EVERY_KIND])
def test_every_response_has_a_request_id(client, method, path, kwargs, status):
    resp = client.request(method, path, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.headers.get("x-request-id")


@pytest.mark.parametrize("method,path,kwargs,status", EVERY_KIND, ids=[f"{m}-{s}" for m, _, _, s in EVERY_KIND])
@pytest.mark.parametrize("given", ["9b2f6c1e-8d4a-4f0b-a1c3-5e7d9f2b4a60", "req-abc-123"])
def test_a_client_request_id_is_echoed(client, method, path, kwargs, status, given):
    resp = client.request(method, path, headers={"X-Request-Id": given}, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.headers.get("x-request-id") == given


def test_request_ids_differ_between_requests(client):
    ids = {client.get("/api/system").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_the_request_id_is_recorded_with_the_request(daemon, client):
    before = server_version(daemon, UUID)
    resp = client.post(POWER, json={"action": "kill"}, headers={"X-Request-Id": "trace-me-7"})
    assert resp.status_code == 202
    daemon.wait_operation(resp.json()["id"])
    requested = [e for e in stored_events(daemon, UUID)[before:] if e["type"] == "power.requested"]
    assert requested[0]["metadata"]["request_id"] == "trace-me-7"


@pytest.mark.parametrize(
    "given", ["0042", "ABCDEF00-2B7C-4D0E-9A51-3C2A1B0D9E11", "{9b2f6c1e-8d4a-4f0b-a1c3-5e7d9f2b4a60}"]
)
def test_a_client_request_id_is_echoed_verbatim(client, given):
    """Sanic casts the header to a UUID or an int (`0042` -> `42`, upper case -> lower case);
    a tracing client must get back exactly what it sent."""
    resp = client.get("/api/system", headers={"X-Request-Id": given})
    assert resp.headers.get("x-request-id") == given
