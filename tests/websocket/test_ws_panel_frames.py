"""The websocket takes the frames exactly as the Panel's client sends them, and answers what the
Panel shows: history in the console at once, resources at once, a refused action in words, and
the daemon's notes as Wings writes them into the console. Against `wingman serve`, a real server
process and a real websocket client sending raw text.

The Panel's client (pterodactyl/panel, resources/scripts/plugins/Websocket.ts) sends every frame as
`JSON.stringify({event, args: Array.isArray(payload) ? payload : [payload]})`, so a frame sent
without a payload carries `"args":[null]`. Wings decodes frames into `{Event string; Args
[]string}` with goccy/go-json, which reads that `null` as `""`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid as uuidlib

import pytest

from tests.support.http import add_server, power, stored_events
from tests.support.waiting import eventually
from tests.support.websocket import FRAME_TIMEOUT, socket, token

GENEROUS = {
    name: {"burst": 1000, "every": 0.001}
    for name in ("global", "auth", "set state", "send command", "send logs", "send stats")
}
# Wings' note envelope (server/console.go, through colorstring): yellow, bold, default colour, reset.
NOTE = re.compile(r"\x1b\[33m\x1b\[1m\[Pterodactyl Daemon\]:\x1b\[39m (.*)\x1b\[0m", re.S)
ERROR = re.compile(r"Error Event \[[0-9a-f-]{36}\]: (.*)", re.S)


def panel_frames(first_jwt: str, word: str, refresh_jwt: str) -> list[tuple[str, str]]:
    """What the Panel sends over a console page's life, byte for byte, with where it sends it."""
    return [
        # WebsocketHandler.tsx: socket.setToken(token).connect(url); on open, Websocket.authenticate()
        ("auth", f'{{"event":"auth","args":["{first_jwt}"]}}'),
        # Console.tsx, once connected: instance.send(SocketRequest.SEND_LOGS)
        ("send logs", '{"event":"send logs","args":[null]}'),
        # ServerDetailsBlock.tsx, once connected: instance.send(SocketRequest.SEND_STATS)
        ("send stats", '{"event":"send stats","args":[null]}'),
        # Console.tsx, on Enter: instance.send('send command', command)
        ("send command", f'{{"event":"send command","args":["say {word}"]}}'),
        # WebsocketHandler.tsx, on `token expiring`: socket.setToken(token, true) -> authenticate()
        ("refresh auth", f'{{"event":"auth","args":["{refresh_jwt}"]}}'),
        # PowerButtons.tsx: instance.send('set state', action === 'kill-confirmed' ? 'kill' : action)
        ("set state", '{"event":"set state","args":["stop"]}'),
    ]


@pytest.fixture(scope="module")
def daemon(module_daemon):
    # Sampling rounds a minute apart: figures that come sooner come from the first sample.
    return module_daemon(websocket={"rate_limits": GENEROUS}, utilization={"interval_seconds": 60})


async def frames_until(s, done, timeout: float = FRAME_TIMEOUT) -> list[dict]:
    """Frames up to and including the first for which `done(frame)` holds."""
    seen = []
    while True:
        seen.append(await s.next(timeout))
        if done(seen[-1]):
            return seen


def errors(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["event"] in ("daemon error", "jwt error")]


async def test_a_console_page_gets_history_stats_output_and_power_from_the_panels_exact_frames(daemon):
    uuid = add_server(daemon)
    await asyncio.to_thread(power, daemon, uuid, "start")
    await asyncio.to_thread(daemon.wait_state, uuid, "running")
    word = uuidlib.uuid4().hex
    sent = panel_frames(token(uuid), word, token(uuid))
    async with socket(daemon, uuid) as s:
        answers: dict[str, list[dict]] = {}
        await s.ws.send(sent[0][1])
        answers["auth"] = [await s.next() for _ in range(3)]
        await s.ws.send(sent[1][1])
        answers["send logs"] = await frames_until(s, lambda f: f.get("args") == ["Server started"])
        await s.ws.send(sent[2][1])
        answers["send stats"] = await frames_until(s, lambda f: f["event"] == "stats")
        await s.ws.send(sent[3][1])
        answers["send command"] = await frames_until(s, lambda f: f.get("args") == [f"[Server] {word}"])
        await s.ws.send(sent[4][1])
        answers["refresh auth"] = await frames_until(s, lambda f: f["event"] == "auth success")
        await s.ws.send(sent[5][1])
        answers["set state"] = await frames_until(s, lambda f: f.get("args") == ["offline"] and f["event"] == "status")
        after = await s.quiet()

    assert [f["event"] for f in answers["auth"]] == ["auth success", "status", "stats"]
    assert answers["auth"][1]["args"] == ["running"]
    # The console shows the server's history: its lines, as it printed them.
    history = [f["args"][0] for f in answers["send logs"] if f["event"] == "console output"]
    assert "Server started" in history and "MOTD: welcome" in history, answers["send logs"]
    # The resources block has figures at once, not at the next periodic `stats`.
    stats = json.loads(answers["send stats"][-1]["args"][0])
    assert stats["state"] == "running" and stats["memory_bytes"] > 0, stats
    assert answers["refresh auth"][-1] == {"event": "auth success"}
    states = [f["args"][0] for f in answers["set state"] if f["event"] == "status"]
    assert states == ["stopping", "offline"], answers["set state"]
    for name, got in answers.items():
        assert errors(got) == [], (name, got)
    assert errors(after) == [], after
    requests = [e for e in stored_events(daemon, uuid) if e["type"] == "power.requested"]
    assert [(e["data"]["action"], e["metadata"]["channel"]) for e in requests] == [
        ("start", "http"),
        ("stop", "websocket"),
    ]


@pytest.mark.parametrize("args_text", ["absent", "null", "[]", "[null]", "[null,null]"])
async def test_a_request_without_a_payload_is_answered_whatever_shape_its_args_take(daemon, args_text):
    uuid = add_server(daemon)
    raw = '{"event":"send stats"}' if args_text == "absent" else f'{{"event":"send stats","args":{args_text}}}'
    async with socket(daemon, uuid) as s:
        await s.auth(token(uuid))
        await s.ws.send(raw)
        answer = await s.next()
        assert answer["event"] == "stats", answer
        assert json.loads(answer["args"][0])["state"] == "offline"


async def test_a_null_among_the_args_is_an_empty_string_as_wings_reads_it(daemon):
    uuid = add_server(daemon)
    word = uuidlib.uuid4().hex
    async with socket(daemon, uuid) as s:
        await s.auth(token(uuid))
        await s.ws.send('{"event":"set state","args":[null,"sta",null,"rt"]}')  # joined, as Wings joins
        await s.until("status", "running")
        # Keys in any case, as goccy/go-json matches them; the null is "" between the two parts.
        await s.ws.send(f'{{"Event":"send command","ARGS":["say ",null,"{word}"]}}')
        got = await s.until("console output", f"[Server] {word}")
        assert errors(got) == [], got
        await s.send("set state", "kill")
        await s.until("status", "offline")


@pytest.mark.parametrize(
    "raw, what",
    [
        ('{"event":"send command","args":[5]}', "a number"),
        ('{"event":"send command","args":[1.5]}', "a number"),
        ('{"event":"send command","args":[true]}', "a boolean"),
        ('{"event":"send command","args":["say hi",false]}', "a boolean"),
        ('{"event":"send command","args":[{"text":"say hi"}]}', "an object"),
        ('{"event":"send command","args":[["say hi"]]}', "a list"),
    ],
)
async def test_what_wings_cannot_decode_is_refused_with_the_reason_and_nothing_runs(daemon, raw, what):
    uuid = add_server(daemon)
    async with socket(daemon, uuid) as s:
        await s.auth(token(uuid))
        await s.send("set state", "start")
        await s.until("status", "running")
        await s.ws.send(raw)
        seen = await frames_until(s, lambda f: f["event"] == "daemon error")
        message = ERROR.fullmatch(seen[-1]["args"][0])
        assert message and message[1] == f'"args" must be a list of strings (or nulls), and it holds {what}', seen
        assert not [f for f in seen if f["event"] == "console output" and "[Server]" in f["args"][0]]
        await s.send("set state", "kill")
        rest = await s.until("status", "offline")
    # Nothing reached the server: it echoes every `say`, and it printed none.
    assert not [f for f in rest if f["event"] == "console output" and "[Server]" in f["args"][0]], rest


async def test_start_of_a_running_server_is_refused_in_words_and_changes_nothing(daemon):
    uuid = add_server(daemon)
    async with socket(daemon, uuid) as s:
        await s.auth(token(uuid))
        await s.ws.send('{"event":"set state","args":["start"]}')
        await s.until("status", "running")
        await s.ws.send('{"event":"set state","args":["start"]}')
        seen = await frames_until(s, lambda f: f["event"] == "daemon error")
        message = ERROR.fullmatch(seen[-1]["args"][0])
        assert message and message[1] == "The start action was refused: server is running.", seen
        assert not [f for f in seen if f["event"] == "status"], seen
        assert [f for f in await s.quiet() if f["event"] == "status"] == []
        with daemon.client() as c:
            assert c.get(f"/api/servers/{uuid}").json()["state"] == "running"
        await s.send("set state", "kill")
        await s.until("status", "offline")

    def outcomes():  # the kill's outcome is recorded a moment after `offline`
        found = [
            (e["type"], e["data"]["action"])
            for e in stored_events(daemon, uuid)
            if e["type"] in ("power.succeeded", "power.rejected", "power.failed")
        ]
        return found if len(found) == 3 else None

    assert await asyncio.to_thread(eventually, outcomes, what="three outcomes") == [
        ("power.succeeded", "start"),
        ("power.rejected", "start"),
        ("power.succeeded", "kill"),
    ]


async def test_figures_come_as_soon_as_the_process_runs_not_at_the_next_round(daemon):
    uuid = add_server(daemon)
    async with socket(daemon, uuid) as s:
        await s.auth(token(uuid))
        await s.send("set state", "start")
        started = time.monotonic()
        seen = await frames_until(s, lambda f: f["event"] == "stats" and json.loads(f["args"][0])["state"] == "running")
        # The next sampling round is a minute away: these figures are the server's first sample.
        assert time.monotonic() - started < 50
        first = json.loads(seen[-1]["args"][0])
        assert first["memory_bytes"] > 0 and first["uptime"] > 0, first
        assert ["starting", "running"] == [f["args"][0] for f in seen if f["event"] == "status"]
        with daemon.client() as c:
            utilization = c.get(f"/api/servers/{uuid}").json()["utilization"]
        assert utilization["state"] == "running" and utilization["memory_bytes"] > 0, utilization
        await s.send("set state", "kill")
        await s.until("status", "offline")


async def test_pre_boot_notes_are_console_output_prefixed_as_wings_writes_them(daemon):
    uuid = add_server(daemon)
    async with socket(daemon, uuid) as s:
        await s.auth(token(uuid))
        await s.send("set state", "start")
        seen = await s.until("status", "running")
        await s.send("set state", "kill")
        await s.until("status", "offline")
    notes = [NOTE.fullmatch(f["args"][0]) for f in seen if f["event"] == "console output"]
    notes = [m[1] for m in notes if m]
    assert notes, seen
    assert all(not n.startswith("[") and "\x1b" not in n for n in notes), notes
    assert not [f for f in seen if f["event"] == "daemon message"], seen
    # The server's own lines are not wrapped.
    assert {"event": "console output", "args": ["Server started"]} in seen
    # Notes are not part of the server's history: `send logs` replays only what it printed.
    async with socket(daemon, uuid) as s:
        await s.auth(token(uuid))
        await s.ws.send('{"event":"send logs","args":[null]}')
        history = await s.quiet()
    assert history and all(NOTE.fullmatch(f["args"][0]) is None for f in history if f["event"] == "console output")
