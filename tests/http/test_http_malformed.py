"""Hostile and clumsy requests get clear JSON errors: never a 500, never HTML, and nothing written.

Malformed and deeply nested JSON, bodies over 64 KiB (declared or chunked), unknown routes, wrong
methods, and a request line that is not HTTP at all."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.support.daemon import definition
from tests.support.http import assert_json_error

SERVER = definition()
UUID = SERVER["settings"]["uuid"]
BODY_ROUTES = [f"/api/servers/{UUID}/power", f"/api/servers/{UUID}/commands", "/api/servers"]
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon(servers=[SERVER])


MALFORMED = {
    "garbage": b"\x00\x01\x02",
    "unclosed-object": b'{"action": "start"',
    "trailing-comma": b'{"action": "start",}',
    "single-quotes": b"{'action': 'start'}",
    "two-documents": b'{"action": "start"} {"action": "stop"}',
    "bom-latin1": b'\xef\xbb\xbf\xff{"action": "start"}',
    "deep-arrays": b"[" * 50_000,
    "deep-arrays-closed": b"[" * 30_000 + b"]" * 30_000,
    "deep-objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "deep-inside-a-valid-key": b'{"action": "start", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
}


@pytest.mark.parametrize("route", BODY_ROUTES, ids=["power", "commands", "create"])
@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_is_a_clear_400(client, unchanged, route, body):
    assert len(body) < LIMIT
    resp = client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert_json_error(resp, 400)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=["power", "commands", "create"])
def test_a_body_over_64_kib_is_413(client, unchanged, route):
    body = b'{"action": "start", "pad": "' + b"x" * LIMIT + b'"}'
    resp = client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert_json_error(resp, 413)


def test_a_chunked_body_over_64_kib_is_413(daemon, unchanged):
    def chunks():
        yield b'{"action": "start", "pad": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    with daemon.client() as c:
        resp = c.post(f"/api/servers/{UUID}/power", content=chunks(), headers={"Content-Type": "application/json"})
    assert_json_error(resp, 413)


def test_a_body_just_under_the_limit_is_read(client, daemon):
    body = b'{"action": "kill", "pad": "' + b"x" * (LIMIT - 100) + b'"}'
    assert len(body) <= LIMIT
    resp = client.post(f"/api/servers/{UUID}/power", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 202, resp.text
    daemon.wait_operation(resp.json()["id"])


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/nope",
        "/api",
        "/api/",
        "/api/nope",
        "/api/servers/x/y/z",
        f"/api/servers/{UUID}/nope",
        "/api/operations",
        "/api/servers/%2e%2e/%2e%2e/etc/passwd",
        "/api/servers/" + "a" * 5000,
    ],
)
def test_unknown_routes_are_a_json_404(client, unchanged, path):
    resp = client.get(path)
    assert_json_error(resp, 404)


def test_unknown_routes_are_404_without_a_token_too(daemon):
    resp = httpx.get(daemon.url + "/api/nope", timeout=30)
    assert_json_error(resp, 404)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", f"/api/servers/{UUID}/power"),
        ("PUT", f"/api/servers/{UUID}/power"),
        ("DELETE", f"/api/servers/{UUID}/power"),
        ("PATCH", f"/api/servers/{UUID}"),
        ("PUT", "/api/servers"),
        ("DELETE", "/api/system"),
        ("POST", "/api/system"),
        ("POST", "/api/operations/0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11"),
        ("GET", f"/api/servers/{UUID}/commands"),
    ],
)
def test_wrong_method_is_a_json_405(client, unchanged, method, path):
    resp = client.request(method, path, json={"action": "start"} if method != "GET" else None)
    assert_json_error(resp, 405)


@pytest.mark.parametrize("size", ["abc", "0", "-1", "1001", "1e3"])
def test_bad_log_size_is_400(client, size):
    resp = client.get(f"/api/servers/{UUID}/logs", params={"size": size})
    assert_json_error(resp, 400)


COMMAND_BODIES = {
    "not-an-object": b'["say hi"]',
    "no-commands": b"{}",
    "empty-list": b'{"commands": []}',
    "not-strings": b'{"commands": [1, 2]}',
    "a-string": b'{"commands": "say hi"}',
    "too-many": b'{"commands": [' + b",".join([b'"list"'] * 101) + b"]}",
}


@pytest.mark.parametrize("body", COMMAND_BODIES.values(), ids=COMMAND_BODIES.keys())
def test_bad_command_bodies_are_400(client, unchanged, body):
    resp = client.post(f"/api/servers/{UUID}/commands", content=body, headers={"Content-Type": "application/json"})
    assert_json_error(resp, 400)


def test_a_request_line_that_is_not_http_gets_a_json_400(daemon):
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
        sock.sendall(b"HELLO THERE\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), data
    assert b"<html" not in data.lower()
    assert b'"error"' in body


def test_the_daemon_still_answers_after_all_that(client):
    assert client.get("/api/system").status_code == 200
