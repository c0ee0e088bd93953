"""The document and the server agree, value by value, on the inputs schemathesis found them to
disagree on: each value below is judged by the served document's own schema (formats checked) and
sent to a real daemon, and the two verdicts must be the same."""

from __future__ import annotations

import httpx
import jsonschema_rs
import pytest

from tests.support.daemon import definition

SERVER = definition(invocation="exec sleep 1000", done=())
UUID = SERVER["settings"]["uuid"]
KEY = "A" * 43 + "="


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon(servers=[SERVER])


@pytest.fixture(scope="module")
def served(daemon) -> dict:
    return httpx.get(f"{daemon.url}/api/openapi.json", timeout=30).json()


def _param_schema(served: dict, path: str, name: str) -> dict:
    param = next(p for p in served["paths"][path]["get"]["parameters"] if p["name"] == name)
    return {**param["schema"], "components": served["components"]}


def _allowed(schema: dict, value) -> bool:
    return jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(value)


@pytest.mark.parametrize(
    "path, name, value, as_number",
    [
        ("/api/events", "since", "2026-11-28T03:12:00Z", False),
        ("/api/events", "since", "2026-11-28t03:12:00.123456789+05:30", False),
        ("/api/events", "since", "0001-01-01T00:00:00+05:00", False),  # before Python's first instant: a bound still
        ("/api/events", "until", "2016-12-31T23:59:60Z", False),  # a leap second
        ("/api/events", "since", "2026-11-28 03:12:00Z", False),  # a space for the T: not RFC 3339's date-time
        ("/api/events", "since", " 2026-11-28T03:12:00Z", False),
        ("/api/events", "since", "2026-13-28T03:12:00Z", False),
        ("/api/events", "after", "5", True),
        ("/api/events", "after", "+5", False),
        ("/api/events", "after", "5_0", False),
        ("/api/events", "after", str(2**63), True),
        ("/api/servers/{uuid}/state", "at", "12", True),
        ("/api/servers/{uuid}/state", "at", "2026-11-28T03:12:00Z", False),
        ("/api/servers/{uuid}/state", "at", "٣", False),  # a digit, of another script
        ("/api/audit/verify", "key", KEY, False),
        ("/api/audit/verify", "key", KEY.replace("A", " ", 1), False),  # a `+` left unescaped reads as a space
        ("/api/audit/verify", "key", "A" * 42 + "==", False),  # 31 bytes
        ("/api/audit/verify", "key", "A" * 44, False),
    ],
)
def test_a_query_value_is_taken_exactly_when_the_document_allows_it(daemon, served, path, name, value, as_number):
    allowed = _allowed(_param_schema(served, path, name), int(value) if as_number else value)
    with daemon.client() as c:
        status = c.get(path.replace("{uuid}", UUID), params={name: value}).status_code
    assert status in (200, 400), status
    assert (status == 200) == allowed, (name, value, status, allowed)


@pytest.mark.parametrize(
    "path", ["/api/statechart", f"/api/servers/{UUID}/diagram", "/api/events", f"/api/servers/{UUID}/logs"]
)
def test_an_empty_query_value_is_the_default_as_documented(daemon, served, path):
    templated = path.replace(UUID, "{uuid}")
    assert all(p.get("allowEmptyValue") for p in served["paths"][templated]["get"]["parameters"] if p["in"] == "query")
    with daemon.client() as c:
        empty = c.get(
            path
            + "?"
            + "&".join(f"{p['name']}=" for p in served["paths"][templated]["get"]["parameters"] if p["in"] == "query")
        )
        absent = c.get(path)
    assert empty.status_code == absent.status_code == 200
    assert empty.headers["content-type"] == absent.headers["content-type"]


def _definition_schema(served: dict) -> dict:
    return _component(served, "ServerDefinition")


def _component(served: dict, name: str) -> dict:
    """A schema of the document's, its `$ref`s resolving against the document."""
    return {"$ref": f"#/components/schemas/{name}", "components": served["components"]}


@pytest.mark.parametrize(
    "change",
    [
        {"process_configuration": {"startup": {"strip_ansi": 0}}},  # Wings' Go decoder refuses 0 for a bool
        {"process_configuration": {"startup": {"strip_ansi": True}}},
        {"settings": {"suspended": "false"}},
        {"settings": {"runtime": "docker"}},  # no image
        {"settings": {"runtime": "docker", "container": {"image": ""}}},
        {"settings": {"environment": {"BAD NAME": "x"}}},
        {"settings": {"environment": {"OK": "a\u0000b"}}},
        {"settings": {"build": {"memory_limit": True}}},
        {"process_configuration": {"stop": {"type": "command"}}},  # the default value is a signal's
        {"process_configuration": {"stop": {"type": "command", "value": "say\nbye"}}},
        {"process_configuration": {"stop": {"type": "signal", "value": "sigterm"}}},
        {"process_configuration": {"stop": {"type": "signal", "value": "SIGNOPE"}}},
        {"process_configuration": {"startup": {"done": "one line"}}},
    ],
)
def test_a_definition_is_accepted_exactly_when_the_document_allows_it(daemon, served, change):
    body = definition(invocation="exec sleep 1000", done=())
    for section, values in change.items():
        body[section] = {**body.get(section, {}), **values}
    allowed = _allowed(_definition_schema(served), body)
    with daemon.client() as c:
        status = c.post("/api/servers", json=body).status_code
    assert status in (201, 422), status
    assert (status == 201) == allowed, (change, status, allowed)


@pytest.mark.parametrize("jtis", [["a"], ["x" * 255], [""], ["x" * 256], [" padded "]])
def test_a_jti_is_taken_exactly_when_the_document_allows_it(daemon, served, jtis):
    schema = _component(served, "DenyBody")
    with daemon.client() as c:
        status = c.post(f"/api/servers/{UUID}/ws/deny", json={"jtis": jtis}).status_code
    assert status in (204, 400)
    assert (status == 204) == _allowed(schema, {"jtis": jtis})


@pytest.mark.parametrize("command", ["say hi", "tab\there", "bell\x07", "del\x7f", "two\nlines"])
def test_a_command_is_refused_exactly_when_the_document_refuses_it(daemon, served, command):
    schema = _component(served, "CommandsBody")
    with daemon.client() as c:
        status = c.post(f"/api/servers/{UUID}/commands", json={"commands": [command]}).status_code
    # 502: accepted, but the server is not running (the test does not start it)
    assert (status in (204, 502)) == _allowed(schema, {"commands": [command]}), (command, status)


def test_the_websocket_declares_its_426_and_no_bearer(daemon, served):
    ws = served["paths"]["/api/servers/{uuid}/ws"]["get"]
    assert ws["security"] == [] and "426" in ws["responses"] and "401" not in ws["responses"]
    resp = httpx.get(f"{daemon.url}/api/servers/{UUID}/ws", timeout=30)  # no token, no upgrade
    assert resp.status_code == 426


def test_the_event_stream_declares_one_event_and_checks_after_beside_the_header(daemon, served):
    sse = served["paths"]["/api/events/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert sse["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/EventBody"}
    with daemon.client() as c:
        resp = c.get("/api/events/stream", params={"after": "-1"}, headers={"Last-Event-ID": "0"})
    assert resp.status_code == 400 and "`after`" in resp.json()["error"]


def test_a_deleted_servers_state_is_documented_and_served(daemon, served):
    assert "deleted server" in served["paths"]["/api/servers/{uuid}/state"]["get"]["description"]
    doomed = definition(invocation="exec sleep 1000", done=())
    with daemon.client() as c:
        assert c.post("/api/servers", json=doomed).status_code == 201
        assert c.delete(f"/api/servers/{doomed['settings']['uuid']}").status_code == 204
        state = c.get(f"/api/servers/{doomed['settings']['uuid']}/state")
        gone = c.get(f"/api/servers/{doomed['settings']['uuid']}")
    assert state.status_code == 200 and state.json()["deleted"] is True
    assert gone.status_code == 404
