"""Bad input gets a clear 4xx and changes nothing: console commands that are not one line of text,
definitions that could never start, heads too large for the server, keys given twice.
Against the real daemon over a real socket; `unchanged` checks that nothing was written."""

from __future__ import annotations

import json
import socket

import pytest

from tests.support.daemon import definition
from tests.support.http import assert_json_error, logs, power, total_events
from tests.support.waiting import eventually
from wingman.engine.servers.definition import InvalidDefinition, parse_definition

SERVER = definition()
UUID = SERVER["settings"]["uuid"]


@pytest.fixture(scope="module")
def daemon(module_daemon):
    d = module_daemon(servers=[SERVER])
    assert d.wait_operation(power(d, UUID, "start")["id"])["status"] == "succeeded"
    return d


# -- console commands are one line of text -----------------------------------------------------

BAD_COMMANDS = {
    "lone-surrogate": r'{"commands": ["say \ud800"]}',
    "newline": json.dumps({"commands": ["say one\nstop"]}),
    "carriage-return": json.dumps({"commands": ["say one\rstop"]}),
    "nul": json.dumps({"commands": ["say a\u0000b"]}),
    "escape-char": json.dumps({"commands": ["say \u001b[2J"]}),
    "second-of-two": json.dumps({"commands": ["say fine", "say not\nfine"]}),
}


@pytest.mark.parametrize("body", BAD_COMMANDS.values(), ids=BAD_COMMANDS.keys())
def test_a_command_that_is_not_one_line_of_text_is_400_and_never_sent(daemon, client, unchanged, body):
    before = logs(daemon, UUID)
    resp = client.post(f"/api/servers/{UUID}/commands", content=body, headers={"Content-Type": "application/json"})
    error = assert_json_error(resp, 400)
    assert "command" in error
    # A later good command is the first thing the server hears: the bad one never reached it.
    assert client.post(f"/api/servers/{UUID}/commands", json={"commands": ["say after"]}).status_code == 204
    eventually(lambda: "[Server] after" in logs(daemon, UUID), what="the good command's echo")
    heard = logs(daemon, UUID)[len(before) :]
    assert heard == ["[Server] after"], heard


def test_tabs_and_unicode_are_text(daemon, client):
    resp = client.post(f"/api/servers/{UUID}/commands", json={"commands": ["say héllo\twörld ✓"]})
    assert resp.status_code == 204
    eventually(lambda: "[Server] héllo\twörld ✓" in logs(daemon, UUID), what="the echo")


# -- definitions that could never start are refused at the door ------------------------------


def _with(settings: dict | None = None, startup: dict | None = None, stop: dict | None = None) -> dict:
    doc = definition()
    doc["settings"].update(settings or {})
    doc["process_configuration"]["startup"].update(startup or {})
    if stop is not None:
        doc["process_configuration"]["stop"] = stop
    return doc


UNSTARTABLE = {
    "unbalanced-regex": (_with(startup={"done": ["regex:("]}), "regex"),
    "backreference": (_with(startup={"done": [r"regex:(a)\1"]}), "regex"),
    "huge-memory": (_with(settings={"build": {"memory_limit": 10**30}}), "memory_limit"),
    "huge-pids": (_with(settings={"build": {"pids_limit": 10**9}}), "pids_limit"),
    "huge-cpu": (_with(settings={"build": {"cpu_limit": 10**12}}), "cpu_limit"),
    "nul-in-env": (_with(settings={"environment": {"A": "x\u0000y"}}), "NUL"),
    "nul-in-invocation": (_with(settings={"invocation": "sleep\u0000 1"}), "NUL"),
    "multi-line-stop": (_with(stop={"type": "command", "value": "save\nstop"}), "stop command"),
}


@pytest.mark.parametrize("doc,word", UNSTARTABLE.values(), ids=UNSTARTABLE.keys())
def test_a_definition_that_could_never_start_is_422_and_writes_nothing(daemon, client, unchanged, doc, word):
    resp = client.post("/api/servers", json=doc)
    assert word in assert_json_error(resp, 422)
    assert client.get(f"/api/servers/{doc['settings']['uuid']}").status_code == 404


def test_a_variable_over_the_kernels_limit_is_refused_where_the_body_limit_does_not_apply():
    """The config file has no 64 KiB body limit: the definition check itself refuses the value."""
    with pytest.raises(InvalidDefinition, match="too long for the kernel"):
        parse_definition(_with(settings={"environment": {"A": "x" * 131_072}}))


def test_a_launch_the_kernel_refuses_is_a_clear_failure_not_an_internal_error(daemon_process):
    """Each variable fits, but together they pass the kernel's limit for exec (ARG_MAX, 2 MiB
    here): the launch fails (E2BIG), and says so, as a failed start with the server back offline."""
    doc = definition(env={f"V{i}": "x" * 120_000 for i in range(24)})
    uuid = doc["settings"]["uuid"]
    d = daemon_process(servers=[doc])
    op = d.wait_operation(power(d, uuid, "start")["id"])
    assert op["status"] == "failed"
    assert op["reason"].startswith("could not launch the server") and "Argument list too long" in op["reason"]
    with d.client() as c:
        assert c.get(f"/api/servers/{uuid}").json()["last_transition"]["cause"] == "launch_failed"
    assert "internal error" not in d.read_log() and "crashed" not in d.read_log()


# -- heads the server will not read ----------------------------------------------------------


def _raw(daemon, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as s:
        s.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def _status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body.strip() else {}


def test_a_10_kb_path_is_414(daemon, unchanged):
    raw = _raw(daemon, b"GET /api/servers/" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status, body = _status_and_body(raw)
    assert status == 414 and "request line" in body["error"], raw[:300]


def test_a_100_kb_header_is_431(daemon, unchanged):
    raw = _raw(daemon, b"GET /api/system HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n")
    status, body = _status_and_body(raw)
    assert status == 431 and "header" in body["error"], raw[:300]


# -- JSON keys given twice ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"action": "bogus", "action": "kill"}',
        '{"action": "kill", "action": "kill"}',
        '{"action": "start", "wait_seconds": 1, "wait_seconds": 2}',
    ],
)
def test_a_key_given_twice_is_400_not_last_one_wins(daemon, client, unchanged, body):
    resp = client.post(f"/api/servers/{UUID}/power", content=body, headers={"Content-Type": "application/json"})
    assert "more than once" in assert_json_error(resp, 400)


def test_text_plain_is_read_as_json_as_wings_does(daemon, client):
    before = total_events(daemon)
    resp = client.post(
        f"/api/servers/{UUID}/power", content='{"action": "restart"}', headers={"Content-Type": "text/plain"}
    )
    assert resp.status_code == 202, resp.text
    assert daemon.wait_operation(resp.json()["id"])["status"] == "succeeded"
    assert total_events(daemon) > before
