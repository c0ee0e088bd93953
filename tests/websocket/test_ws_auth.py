"""The websocket's authentication matrix over a real socket against `wingman serve`: a good token,
an expired one, one for another server, a denylisted one, one issued before the daemon started,
a missing permission for each action, messages before auth, re-auth, Origins, and the deny endpoint.
A refused token writes nothing and changes nothing."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.daemon import AUDIT_TOKEN, definition
from tests.support.http import assert_json_error, server_version, stored_events, total_events
from tests.support.websocket import authed, socket, token

SERVER = definition()
UUID = SERVER["settings"]["uuid"]
OTHER = definition()
GENEROUS = {
    name: {"burst": 1000, "every": 0.001}
    for name in ("global", "auth", "set state", "send command", "send logs", "send stats")
}
REMOTE = "https://panel.example.com"
ALLOWED = "https://admin.example.org:8443"

EXPIRED = "jwt: exp claim is invalid"
DENYLISTED = "jwt: created too far in past (denylist)"


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon(
        servers=[SERVER, OTHER],
        remote=REMOTE,
        allowed_origins=[ALLOWED],
        websocket={"rate_limits": GENEROUS},
        utilization={"interval_seconds": 0.5},
    )


@pytest.fixture
def unchanged(daemon):
    before = (server_version(daemon, UUID), total_events(daemon))
    yield
    assert (server_version(daemon, UUID), total_events(daemon)) == before, "a refused token wrote events"


async def refused_with(d, text: str, jwt_token: str) -> None:
    """The token is answered `jwt error` with exactly this text, and nothing else is sent."""
    async with socket(d, UUID) as s:
        await s.send("auth", jwt_token)
        first = await s.next()
        assert first == {"event": "jwt error", "args": [text]}
        # Not authenticated: the probe is refused too, and nothing came in between.
        await s.send("send stats")
        assert await s.next() == {"event": "jwt error", "args": ["jwt: no jwt present"]}


async def test_a_good_token_gets_auth_success_then_status_then_stats(daemon):
    async with socket(daemon, UUID) as s:
        got = await s.auth(token(UUID))
    assert got[0] == {"event": "auth success"}
    assert got[1] == {"event": "status", "args": ["offline"]}
    stats = json.loads(got[2]["args"][0])
    assert set(stats) == {
        "memory_bytes",
        "memory_limit_bytes",
        "cpu_absolute",
        "network",
        "uptime",
        "state",
        "disk_bytes",
    }
    assert stats["state"] == "offline" and stats["memory_bytes"] == 0 and stats["uptime"] == 0


async def test_an_older_panels_user_id_is_accepted(daemon):
    async with socket(daemon, UUID) as s:
        await s.auth(token(UUID, user=None, user_id=42))


async def test_an_expired_token_is_refused_with_wings_text(daemon, unchanged):
    await refused_with(daemon, EXPIRED, token(UUID, expires_in=-5))


async def test_a_token_without_exp_is_refused_as_expired(daemon, unchanged):
    await refused_with(daemon, EXPIRED, token(UUID, exp=None))


async def test_a_token_for_another_server_is_refused_at_auth(daemon, unchanged):
    await refused_with(daemon, "jwt: server uuid mismatch", token(OTHER["settings"]["uuid"]))


async def test_a_token_issued_before_the_daemon_started_is_refused(daemon, unchanged):
    with daemon.client() as c:
        uptime = c.get("/api/system").json()["wingman"]["uptime_seconds"]
    await refused_with(daemon, DENYLISTED, token(UUID, issued=time.time() - uptime - 5))


async def test_a_token_without_iat_is_refused_as_denylisted(daemon, unchanged):
    await refused_with(daemon, DENYLISTED, token(UUID, iat=None))


async def test_a_token_signed_with_another_key_is_refused(daemon, unchanged):
    await refused_with(
        daemon, "jwt: HMAC verification failed", token(UUID, secret="not-the-node-token-at-all-0000000000")
    )


async def test_garbage_and_empty_tokens_are_refused(daemon, unchanged):
    await refused_with(daemon, "jwt: malformed token", "not.a.jwt")
    await refused_with(daemon, "jwt: no jwt present", "")


async def test_a_token_without_connect_permission_is_refused(daemon, unchanged):
    await refused_with(daemon, "jwt: missing connect permission", token(UUID, permissions=["control.start"]))


async def test_a_scope_claim_must_include_websocket(daemon, unchanged):
    await refused_with(daemon, "jwt: the token's scope does not include websocket", token(UUID, scope="files"))
    async with socket(daemon, UUID) as s:
        await s.auth(token(UUID, scope="websocket files"))
    async with socket(daemon, UUID) as s:
        await s.auth(token(UUID, scope=["websocket"]))


async def test_a_token_without_a_user_is_refused(daemon, unchanged):
    await refused_with(daemon, "jwt: the token names no user (user_uuid or user_id)", token(UUID, user=None))


async def test_a_token_not_valid_yet_is_refused(daemon, unchanged):
    await refused_with(daemon, "jwt: nbf claim is invalid", token(UUID, nbf=int(time.time()) + 3600))


@pytest.mark.parametrize(
    "event,args",
    [("set state", ["start"]), ("send command", ["say hi"]), ("send logs", []), ("send stats", []), ("bogus", [])],
)
async def test_every_message_before_auth_is_refused(daemon, unchanged, event, args):
    async with socket(daemon, UUID) as s:
        await s.send(event, *args)
        assert await s.next() == {"event": "jwt error", "args": ["jwt: no jwt present"]}


async def test_a_refused_reauth_keeps_the_socket_on_its_good_token(daemon, unchanged):
    async with authed(daemon, UUID) as s:
        await s.send("auth", token(UUID, expires_in=-1))
        assert await s.next() == {"event": "jwt error", "args": [EXPIRED]}
        await s.send("send stats")  # still authenticated: answered (the server is offline: no periodic stats)
        assert (await s.next())["event"] == "stats"


async def test_a_reauth_sends_only_auth_success(daemon):
    async with authed(daemon, UUID) as s:
        await s.send("auth", token(UUID))
        assert await s.next() == {"event": "auth success"}
        assert await s.quiet() == [], "a re-auth sends no second status"


async def test_token_expiring_then_expired_then_a_refreshed_token(daemon):
    """A short token: `token expiring` at once (a minute or less left), `token expired` when it
    runs out; then messages get Wings' expiry text until the Panel re-auths with a fresh token."""
    async with socket(daemon, UUID) as s:
        await s.auth(token(UUID, expires_in=3))
        assert await s.next() == {"event": "token expiring"}
        assert await s.next() == {"event": "token expired"}
        await s.send("send stats")
        assert await s.next() == {"event": "jwt error", "args": [EXPIRED]}
        await s.send("auth", token(UUID))
        assert await s.next() == {"event": "auth success"}
        assert await s.quiet() == []


@pytest.mark.parametrize(
    "action,permission",
    [("start", "control.start"), ("stop", "control.stop"), ("restart", "control.restart"), ("kill", "control.stop")],
)
async def test_a_power_action_needs_its_permission(daemon, unchanged, action, permission):
    others = [p for p in ("control.start", "control.stop", "control.restart", "control.console") if p != permission]
    async with authed(daemon, UUID, permissions=["websocket.connect", *others]) as s:
        await s.send("set state", action)
        f = await s.next()
    assert f["event"] == "daemon error" and permission in f["args"][0], f


async def test_send_command_needs_control_console(daemon, unchanged):
    async with authed(daemon, UUID, permissions=["websocket.connect", "control.start"]) as s:
        await s.send("send command", "say hi")
        f = await s.next()
    assert f["event"] == "daemon error" and "control.console" in f["args"][0], f


async def test_star_grants_every_action_but_not_admin_errors(daemon):
    from wingman.api.websocket.permissions import granted

    assert granted(["*"], "control.start") and granted(["*"], "control.console")
    assert not granted(["*"], "admin.websocket.errors")


async def test_a_foreign_origin_is_refused_before_any_frame(daemon, unchanged):
    with pytest.raises(InvalidStatus) as refused:
        async with socket(daemon, UUID, origin="https://evil.example.net"):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("origin", [REMOTE, "HTTPS://Panel.Example.com:443", ALLOWED])
async def test_the_panels_origin_and_allowed_origins_may_connect(daemon, origin):
    async with socket(daemon, UUID, origin=origin) as s:
        await s.auth(token(UUID))


async def test_an_unknown_server_is_refused_before_the_upgrade(daemon):
    with pytest.raises(InvalidStatus) as refused:
        async with socket(daemon, "0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11"):
            pass
    assert refused.value.response.status_code == 404


async def test_a_denylisted_jti_is_refused_and_open_sockets_are_told(daemon):
    jti = "panel-jti-for-this-user-and-server"
    async with authed(daemon, UUID, jti=jti) as s:
        before = time.time()  # a token issued now was issued before the denial below
        with daemon.client() as c:
            resp = c.post(f"/api/servers/{UUID}/ws/deny", json={"jtis": [jti]})
        assert resp.status_code == 204, resp.text
        assert await s.next() == {"event": "jwt error", "args": [DENYLISTED]}
        # A fresh token with that jti, issued after the denial, works again.
        await s.send("auth", token(UUID, jti=jti, issued=time.time() + 1))
        assert await s.next() == {"event": "auth success"}
    await refused_with(daemon, DENYLISTED, token(UUID, jti=jti, issued=before))
    denied = [e for e in stored_events(daemon, UUID) if e["type"] == "server.websocket_tokens_denied"]
    assert denied[-1]["data"] == {"jtis": [jti]} and denied[-1]["metadata"]["actor"] == "node-token"


@pytest.mark.parametrize(
    "body", [None, b"nope", {"jtis": "abc"}, {"jtis": [1]}, {"jtis": [""]}, {}, [], {"jtis": ["x" * 256]}]
)
def test_the_deny_endpoint_refuses_bad_bodies_and_writes_nothing(daemon, unchanged, body):
    kwargs = {"content": body} if isinstance(body, bytes) else ({"json": body} if body is not None else {})
    with daemon.client() as c:
        resp = c.post(f"/api/servers/{UUID}/ws/deny", **kwargs)
    assert_json_error(resp, 400)


def test_the_deny_endpoint_needs_the_node_token_and_a_known_server(daemon, unchanged):
    url = daemon.url + f"/api/servers/{UUID}/ws/deny"
    assert_json_error(httpx.post(url, json={"jtis": ["a"]}), 401)
    assert_json_error(httpx.post(url, json={"jtis": ["a"]}, headers={"Authorization": f"Bearer {AUDIT_TOKEN}"}), 403)
    with daemon.client() as c:
        assert_json_error(
            c.post("/api/servers/0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11/ws/deny", json={"jtis": ["a"]}), 404
        )
        assert c.post(f"/api/servers/{UUID}/ws/deny", json={"jtis": []}).status_code == 204  # denies nothing
