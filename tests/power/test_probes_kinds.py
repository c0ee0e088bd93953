"""Each probe kind against a real process that listens, written here: a TCP server, an HTTP
server, a UDP server answering A2S (with and without a challenge), a Minecraft-ping responder,
hostile ones (garbage, a huge declared length, a redirect off the host), and ones that stop
answering while their process stays alive. Then readiness and liveness over time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from tests.support.daemon import free_port
from tests.support.waiting import eventually_async
from wingman.engine.probes.attempt import attempt
from wingman.engine.probes.runner import NeverReady, wait_ready, watch_liveness
from wingman.engine.probes.spec import Liveness, Readiness

# argv: MODE PORT [ANSWERS]; prints "listening" once bound; after ANSWERS answers it stops
# answering (a TCP listener closes its socket, the others go silent) but lives on.
RESPONDER = r"""
import asyncio, json, socket, struct, sys
mode, port = sys.argv[1], int(sys.argv[2])
left = int(sys.argv[3]) if len(sys.argv) > 3 else 10**9

def info():
    body = b"\x11" + b"\x00".join(s.encode() for s in ("probe me", "de_dust2", "cstrike", "CS")) + b"\x00"
    return b"\xff\xff\xff\xffI" + body + struct.pack("<hBBBccBB", 240, 2, 16, 0, b"d", b"l", 0, 1) + b"1\x00"

def varint(v):
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)

class A2S(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, data, addr):
        global left
        if left <= 0:
            return
        if mode == "a2s-garbage":
            self.t.sendto(b"\xff\xff\xff\xffI\x11no terminator", addr); return
        if mode == "a2s-challenge" and not data.endswith(b"\x00\x00\x00\x2a"):
            self.t.sendto(b"\xff\xff\xff\xffA\x00\x00\x00\x2a", addr); return
        left -= 1
        self.t.sendto(info(), addr)

async def stream(reader, writer):
    global left
    if left <= 0:
        await asyncio.sleep(3600)  # holds the connection and never answers
    left -= 1
    if mode.startswith("http"):
        await reader.readuntil(b"\r\n\r\n")
        head = {"http": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                "http-redirect": b"HTTP/1.1 302 Found\r\nLocation: http://192.0.2.1/\r\nContent-Length: 0\r\n\r\n",
                "http-flood": b"HTTP/1.1 200 " + b"x" * 100_000}[mode]
        writer.write(head)
    elif mode == "minecraft":
        await reader.read(64)
        text = json.dumps({"version": {"name": "1.21"}, "players": {"online": 1, "max": 20}}).encode()
        payload = varint(0) + varint(len(text)) + text
        writer.write(varint(len(payload)) + payload)
    elif mode == "minecraft-huge":
        await reader.read(64)
        writer.write(varint(2**30) + b"\x00" * 1000)
    await writer.drain()
    writer.close()

async def main():
    loop = asyncio.get_running_loop()
    if mode.startswith("a2s"):
        await loop.create_datagram_endpoint(A2S, local_addr=("127.0.0.1", port))
    elif mode == "tcp":
        listener = socket.create_server(("127.0.0.1", port))
        print("listening", flush=True)
        while left > 0:
            conn, _ = await loop.sock_accept(listener)
            conn.close()
            globals()["left"] -= 1
        listener.close()  # refused from now on, the process alive
        await asyncio.sleep(3600)
    else:
        await asyncio.start_server(stream, "127.0.0.1", port)
    print("listening", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture
def responder(tmp_path):
    """`responder(mode, answers=...)` -> the port of a real process answering as `mode`."""
    script = tmp_path / "responder.py"
    script.write_text(RESPONDER)
    procs: list[subprocess.Popen] = []

    def start(mode: str, answers: int | None = None, port: int | None = None) -> int:
        port = port or free_port()
        args = [sys.executable, str(script), mode, str(port)] + ([str(answers)] if answers is not None else [])
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        return port

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def ready(kind: str, port: int, **more) -> Readiness:
    return Readiness(type=kind, port=port, interval=0.05, timeout=0.5, deadline=2.0, **more)


@pytest.mark.parametrize("mode", ["tcp", "http", "a2s", "a2s-challenge", "minecraft"])
async def test_each_kind_answers(responder, mode):
    port = responder(mode)
    outcome = await attempt(ready(mode.split("-")[0], port), "127.0.0.1")
    assert outcome.ok, outcome.detail
    if mode.startswith("a2s"):
        assert "'probe me' on 'de_dust2', 2/16 players" == outcome.detail
    if mode == "minecraft":
        assert outcome.detail == "'1.21', 1/20 players"


HOSTILE = {
    "a2s-garbage": ("a2s", "unterminated"),
    "minecraft-huge": ("minecraft", "declares 1073741824 bytes"),
    "http-redirect": ("http", "answered 302, not 200"),
    "http-flood": ("http", "not HTTP"),
}


@pytest.mark.parametrize("mode", HOSTILE, ids=HOSTILE)
async def test_a_hostile_reply_is_a_failure_in_words(responder, mode):
    kind, words = HOSTILE[mode]
    outcome = await attempt(ready(kind, responder(mode)), "127.0.0.1")
    assert not outcome.ok and words in outcome.detail, outcome.detail


@pytest.mark.parametrize("kind", ["tcp", "http", "a2s", "minecraft"])
async def test_nobody_listening_fails_within_the_timeout(kind):
    t0 = time.monotonic()
    outcome = await attempt(ready(kind, free_port()), "127.0.0.1")
    assert not outcome.ok and time.monotonic() - t0 < 1.5, outcome


@pytest.mark.parametrize("mode", ["a2s", "minecraft", "http"])
async def test_a_server_that_stops_answering_times_out(responder, mode):
    port = responder(mode, answers=1)
    spec = ready(mode, port)
    assert (await attempt(spec, "127.0.0.1")).ok
    t0 = time.monotonic()
    outcome = await attempt(spec, "127.0.0.1")
    assert not outcome.ok and f"within {spec.timeout:g} s" in outcome.detail, outcome
    assert 0.4 < time.monotonic() - t0 < 1.5


async def test_readiness_waits_for_a_late_listener(responder):
    port = free_port()
    waiting = asyncio.create_task(wait_ready(ready("a2s", port), "127.0.0.1"))
    await asyncio.sleep(0.3)  # the server is still booting: nothing listens yet
    assert not waiting.done()
    await asyncio.to_thread(responder, "a2s", None, port)
    assert (await asyncio.wait_for(waiting, 3)).ok


async def test_readiness_that_never_answers_fails_with_the_reason():
    port = free_port()
    spec = Readiness(type="a2s", port=port, interval=0.1, timeout=0.2, deadline=1.0)
    t0 = time.monotonic()
    with pytest.raises(NeverReady, match=rf"^no answer on udp/{port} after 1 s"):
        await wait_ready(spec, "127.0.0.1")
    assert 0.9 < time.monotonic() - t0 < 2.0


async def test_liveness_tells_each_change_once_and_decides_hung(responder):
    port = responder("tcp", answers=3)
    told: list[tuple] = []
    spec = Liveness(type="tcp", port=port, interval=0.05, timeout=0.5, failure_threshold=4)
    await asyncio.wait_for(
        watch_liveness(
            spec,
            "127.0.0.1",
            changed=lambda *a: _note(told, ("changed", *a)),
            hung=lambda *a: _note(told, ("hung", *a)),
            spread=False,
        ),
        10,
    )
    # Three successes (no event), then failures: one change, then the decision after the 4th.
    assert [t[0] for t in told] == ["changed", "hung"], told
    assert told[0][1] is False and told[0][3] == 1 and told[1][2] == 4


async def test_liveness_tells_a_recovery(responder):
    port = free_port()  # nobody listens at first: failing, below the threshold
    told: list[tuple] = []
    spec = Liveness(type="a2s", port=port, interval=0.05, timeout=0.2, failure_threshold=1000)
    watch = asyncio.create_task(
        watch_liveness(spec, "127.0.0.1", lambda *a: _note(told, a), lambda *a: _note(told, ("hung",)), spread=False)
    )
    try:
        await eventually_async(lambda: len(told) == 1, 5, "the change to failing")
        assert told[0][0] is False and "udp/" in told[0][1], told
        await asyncio.to_thread(responder, "a2s", None, port)
        await eventually_async(lambda: len(told) == 2, 5, "the change back to passing")
        assert told[1] == (True, "'probe me' on 'de_dust2', 2/16 players", 0)
    finally:
        watch.cancel()


async def _note(told: list, item: tuple) -> None:
    told.append(item)
