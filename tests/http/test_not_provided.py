"""Wings' routes that wingman does not provide (files, backups, transfers, downloads, config
update) answer a 501 naming what is missing, over a real socket: a Panel's file manager pointed
at the node shows a reason instead of hanging. Nothing is recorded."""

from __future__ import annotations

import uuid as uuidlib

import httpx
import pytest

from tests.support.http import WINGS_NOT_FOUND, add_server, assert_json_error, total_events


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon()


# What a Panel sends for each (router/router.go in Wings), with the words the answer must carry.
SERVER_CALLS = [
    ("GET", "/files/list-directory?directory=%2F", "file manager"),
    ("GET", "/files/contents?file=server.properties", "file manager"),
    ("POST", "/files/write?file=a.txt", "file manager"),
    ("PUT", "/files/rename", "file manager"),
    ("POST", "/files/pull", "file manager"),
    ("POST", "/backup", "backups"),
    ("POST", "/backup/1b4f0c1e/restore", "backups"),
    ("DELETE", "/backup/1b4f0c1e", "backups"),
    ("POST", "/transfer", "transfers"),
]


@pytest.mark.parametrize("method,path,words", SERVER_CALLS, ids=[f"{m} {p}" for m, p, _ in SERVER_CALLS])
def test_a_panel_call_for_what_wingman_is_not_gets_a_501_that_names_it(daemon, method, path, words):
    uuid = add_server(daemon)
    before = total_events(daemon)
    with daemon.client() as c:
        resp = c.request(method, f"/api/servers/{uuid}{path}", json={})
    error = assert_json_error(resp, 501)
    assert words in error and "power daemon" in error
    assert total_events(daemon) == before


def test_an_unknown_server_is_still_a_404_and_a_missing_token_a_401(daemon):
    with daemon.client() as c:
        assert_json_error(c.get(f"/api/servers/{uuidlib.uuid4()}/files/list-directory"), 404, WINGS_NOT_FOUND)
    uuid = add_server(daemon)
    resp = httpx.get(f"{daemon.url}/api/servers/{uuid}/files/list-directory")
    assert_json_error(resp, 401)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/download/file?token=x"),
        ("POST", "/upload/file?token=x"),
        ("POST", "/api/transfers"),
        ("POST", "/api/update"),
    ],
)
def test_node_routes_of_wings_get_a_501_too(daemon, method, path):
    with daemon.client() as c:
        error = assert_json_error(c.request(method, path, json={}), 501)
    assert "power daemon" in error


def test_the_openapi_document_lists_them_as_501(daemon):
    with daemon.client() as c:
        paths = c.get("/api/openapi.json").json()["paths"]
    listing = paths["/api/servers/{uuid}/files/list-directory"]["get"]
    assert "501" in listing["responses"]
    assert "501" in paths["/download/file"]["get"]["responses"]
