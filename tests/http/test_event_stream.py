"""`GET /api/events/stream` against `wingman serve`: Server-Sent Events with `id: <position>`, the
same JSON as `GET /api/events`; resume with `?after` or `Last-Event-ID` after a disconnect while
another task appends as fast as it can, with no gap and no duplicate; filters; heartbeats;
tokens; bad input is a JSON 4xx."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.support.daemon import AUDIT_TOKEN, TOKEN, definition
from tests.support.http import assert_json_error

SERVER = definition()
UUID = SERVER["settings"]["uuid"]
OTHER = definition()


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon(servers=[SERVER, OTHER], event_stream={"heartbeat_seconds": 0.2})


def sse(resp: httpx.Response):
    """(id, data) of each event, and ("comment", text) of each comment, as they arrive."""
    ident, data = None, []
    for line in resp.iter_lines():
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("id:"):
            ident = int(line[3:].strip())
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "" and data:
            yield ident, json.loads("\n".join(data))
            ident, data = None, []


def read_events(
    d, count: int, token: str = TOKEN, headers: dict | None = None, until_idle: bool = False, **params
) -> list[tuple[int, dict]]:
    """Up to `count` events (fewer when `until_idle` and a heartbeat says the stream is idle)."""
    got = []
    with httpx.stream(
        "GET",
        d.url + "/api/events/stream",
        params=params,
        timeout=60,
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
    ) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for ident, data in sse(resp):
            if ident == "comment":
                if until_idle and data == "heartbeat":
                    break
                continue
            got.append((ident, data))
            if len(got) >= count:
                break
    return got


def all_events(d, **params) -> list[dict]:
    out, after = [], 0
    with d.client() as c:
        while after is not None:
            body = c.get("/api/events", params={"after": after, "limit": 1000, **params}).json()
            out += body["events"]
            after = body["next_after"]
    return out


class Appender(threading.Thread):
    """Another client appending as fast as the daemon takes it (each deny is one event)."""

    def __init__(self, d, count: int):
        super().__init__(daemon=True)
        self.d, self.count, self.done = d, count, 0

    def run(self):
        with self.d.client() as c:
            for i in range(self.count):
                assert c.post(f"/api/servers/{UUID}/ws/deny", json={"jtis": [f"stream-{i}"]}).status_code == 204
                self.done += 1


def test_the_log_then_live_events_resumed_after_disconnects_with_no_gap_or_duplicate(daemon):
    start = all_events(daemon)[-1]["position"]
    appender = Appender(daemon, 300)
    appender.start()
    seen: list[int] = []
    bodies: dict[int, dict] = {}
    last = start
    use_header = False
    while True:
        # Each connection reads a few events and drops; the next resumes where it left off,
        # alternating the two ways of saying where.
        finished = not appender.is_alive()
        params, headers = ({}, {"Last-Event-ID": str(last)}) if use_header else ({"after": last}, {})
        got = read_events(daemon, 17, headers=headers, until_idle=True, **params)
        seen += [p for p, _ in got]
        bodies.update({p: b for p, b in got})
        last = seen[-1] if seen else start
        use_header = not use_header
        if finished and not got:
            break
    assert appender.done == 300
    assert len(seen) >= 300
    assert seen == list(range(start + 1, seen[-1] + 1)), "every position once, in order"
    stored = {e["position"]: e for e in all_events(daemon)}
    for p in seen:
        assert bodies[p] == stored[p], "the same JSON as GET /api/events"
        assert bodies[p]["position"] == p


def test_last_event_id_wins_over_after(daemon):
    events = all_events(daemon)
    got = read_events(daemon, 1, headers={"Last-Event-ID": str(events[1]["position"])}, after=0)
    assert got[0][0] == events[2]["position"]


def test_server_and_type_filters_as_in_the_events_endpoint(daemon):
    with daemon.client() as c:
        for i in range(3):
            assert (
                c.post(f"/api/servers/{OTHER['settings']['uuid']}/ws/deny", json={"jtis": [f"other-{i}"]}).status_code
                == 204
            )
    expected = all_events(daemon, server=OTHER["settings"]["uuid"], type="server.*")
    got = read_events(daemon, len(expected), server=OTHER["settings"]["uuid"], type="server.*")
    assert [p for p, _ in got] == [e["position"] for e in expected]
    assert {b["type"] for _, b in got} <= {"server.registered", "server.websocket_tokens_denied"}

    # Then live: a new matching event arrives, one of another server does not.
    def later():
        with daemon.client() as c:
            c.post(f"/api/servers/{UUID}/ws/deny", json={"jtis": ["not-this-server"]})
            c.post(f"/api/servers/{OTHER['settings']['uuid']}/ws/deny", json={"jtis": ["live-one"]})

    timer = threading.Timer(0.3, later)
    timer.start()
    live = read_events(
        daemon,
        1,
        after=expected[-1]["position"],
        server=OTHER["settings"]["uuid"],
        type="server.websocket_tokens_denied",
    )
    timer.join()
    assert live[0][1]["data"] == {"jtis": ["live-one"]}


def test_an_idle_stream_gets_heartbeat_comments(daemon):
    last = all_events(daemon)[-1]["position"]
    comments = []
    with httpx.stream(
        "GET",
        daemon.url + "/api/events/stream",
        params={"after": last + 10_000},
        timeout=60,
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as resp:
        assert resp.headers.get("cache-control") == "no-cache"
        for ident, text in sse(resp):
            if ident == "comment":
                comments.append(text)
            if comments.count("heartbeat") >= 2:
                break
    assert comments.count("heartbeat") >= 2


def test_an_audit_token_may_follow_the_stream(daemon):
    assert read_events(daemon, 1, token=AUDIT_TOKEN)[0][0] == 1


@pytest.mark.parametrize(
    "params,headers,status",
    [
        ({"after": "-1"}, {}, 400),
        ({"after": "x"}, {}, 400),
        ({}, {"Last-Event-ID": "abc"}, 400),
        ({"after": str(2**64)}, {}, 400),
        ({}, {"Last-Event-ID": str(2**64)}, 400),
        ({"since": "yesterday"}, {}, 400),
        ({"server": "0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11"}, {}, 404),
    ],
)
def test_bad_input_is_a_json_error(daemon, params, headers, status):
    resp = httpx.get(
        daemon.url + "/api/events/stream",
        params=params,
        timeout=30,
        headers={"Authorization": f"Bearer {TOKEN}", **headers},
    )
    assert_json_error(resp, status)


def test_the_stream_needs_a_token(daemon):
    assert_json_error(httpx.get(daemon.url + "/api/events/stream", timeout=30), 401)
    assert_json_error(
        httpx.get(
            daemon.url + "/api/events/stream", timeout=30, headers={"Authorization": "Bearer wrong-token-0123456789"}
        ),
        403,
    )


def test_a_daemon_with_open_streams_stops_promptly(daemon_process):
    d = daemon_process()
    opened = threading.Event()

    def follow():
        try:
            with httpx.stream(
                "GET", d.url + "/api/events/stream", timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as resp:
                opened.set()
                for _ in resp.iter_lines():
                    pass
        except httpx.HTTPError:
            pass

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    assert opened.wait(30)
    d.stop()
    assert d.proc.returncode == 0, d.read_log()[-2000:]
    t.join(30)
    assert not t.is_alive(), "the stream ended with the daemon"
