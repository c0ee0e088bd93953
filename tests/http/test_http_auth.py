"""Bearer authentication over a real socket: 401 (with `WWW-Authenticate: Bearer`) without a
Bearer token, 403 with a wrong one, for every authenticated route; refusals write nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.support.daemon import AUDIT_TOKEN, TOKEN, definition
from tests.support.http import assert_json_error, server_version, total_events

SERVER = definition()
UUID = SERVER["settings"]["uuid"]

# Every authenticated route, with a body that would otherwise be acceptable.
ROUTES = [
    ("POST", f"/api/servers/{UUID}/power", {"action": "start"}),
    ("POST", "/api/servers", definition()),
    ("GET", "/api/servers", None),
    ("GET", f"/api/servers/{UUID}", None),
    ("DELETE", f"/api/servers/{UUID}", None),
    ("POST", f"/api/servers/{UUID}/commands", {"commands": ["say hi"]}),
    ("GET", f"/api/servers/{UUID}/logs", None),
    ("GET", "/api/operations/0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11", None),
    ("GET", "/api/system", None),
    ("GET", "/api/audit/key", None),
    ("POST", "/api/audit/key/rotate", None),
    ("POST", f"/api/servers/{UUID}/ws/deny", {"jtis": ["a-jti"]}),
    ("GET", "/api/events/stream", None),
]
WRITES = [r for r in ROUTES if r[0] != "GET"]
IDS = [f"{m} {p.replace(UUID, '{uuid}')}" for m, p, _ in ROUTES]


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon(servers=[SERVER])


def call(d, method, path, body, headers):
    kwargs = {"json": body} if body is not None else {}
    return httpx.request(method, d.url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def unchanged(daemon):
    """Asserts after the test that nothing at all was written to the store."""
    before = (server_version(daemon, UUID), total_events(daemon))
    yield
    assert (server_version(daemon, UUID), total_events(daemon)) == before, "a refused request wrote events"


BAD_SCHEMES = {
    "absent": {},
    "empty": {"Authorization": ""},
    "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
    "token-only": {"Authorization": TOKEN},
    "bearer-without-token": {"Authorization": "Bearer"},
}


@pytest.mark.parametrize("headers", BAD_SCHEMES.values(), ids=BAD_SCHEMES.keys())
@pytest.mark.parametrize("method,path,body", ROUTES, ids=IDS)
def test_missing_or_non_bearer_authorization_is_401(daemon, unchanged, method, path, body, headers):
    resp = call(daemon, method, path, body, headers)
    assert_json_error(resp, 401)
    assert resp.headers.get("www-authenticate", "").lower().startswith("bearer")


@pytest.mark.parametrize("token", ["wrong-token-0123456789", TOKEN + "x", TOKEN[:-1], TOKEN.upper()])
@pytest.mark.parametrize("method,path,body", ROUTES, ids=IDS)
def test_wrong_token_is_403(daemon, unchanged, method, path, body, token):
    resp = call(daemon, method, path, body, {"Authorization": f"Bearer {token}"})
    assert_json_error(resp, 403)


@pytest.mark.parametrize(
    "method,path,body", WRITES, ids=[i for i, r in zip(IDS, ROUTES, strict=False) if r[0] != "GET"]
)
def test_audit_token_cannot_change_the_node(daemon, unchanged, method, path, body):
    resp = call(daemon, method, path, body, {"Authorization": f"Bearer {AUDIT_TOKEN}"})
    assert_json_error(resp, 403)


def test_audit_token_can_read(daemon):
    headers = {"Authorization": f"Bearer {AUDIT_TOKEN}"}
    assert call(daemon, "GET", "/api/servers", None, headers).status_code == 200
    assert call(daemon, "GET", f"/api/servers/{UUID}", None, headers).status_code == 200
    assert call(daemon, "GET", "/api/system", None, headers).status_code == 200


def test_bearer_scheme_is_case_insensitive(daemon):
    resp = call(daemon, "GET", "/api/servers", None, {"Authorization": f"bearer {TOKEN}"})
    assert resp.status_code == 200, resp.text


def test_auth_is_checked_before_the_server_lookup(daemon, unchanged):
    """An unknown server does not tell an anonymous caller anything: 401, not 404."""
    resp = call(daemon, "POST", "/api/servers/0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11/power", {"action": "start"}, {})
    assert_json_error(resp, 401)
    resp = call(
        daemon,
        "POST",
        "/api/servers/0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11/power",
        {"action": "start"},
        {"Authorization": "Bearer wrong-token-0123456789"},
    )
    assert_json_error(resp, 403)


def test_openapi_document_needs_no_token(daemon):
    resp = httpx.get(daemon.url + "/api/openapi.json", timeout=30)
    assert resp.status_code == 200
    assert resp.headers.get("x-request-id")
    paths = resp.json()["paths"]
    assert any(p.startswith("/api/servers/") and p.endswith("/power") for p in paths), sorted(paths)
