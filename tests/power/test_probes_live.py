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

from tests.support.daemon import SERVER_PYTHON, SHARED, definition, free_port, shared_file
from tests.support.http import assert_json_error, power, processes_under, stored_events, total_events
from tests.support.waiting import eventually, eventually_async
from wingman.engine.probes.attempt import attempt
from wingman.engine.probes.runner import NeverReady, wait_ready, watch_liveness
from wingman.engine.probes.spec import Liveness, Readiness

# argv: MODE PORT [ANSWERS]; prints "listening" once bound; after ANSWERS answers it stops
# answering (a TCP listener closes its socket, the others go silent) but lives on.
RESPONDER = r"""
import asyncio, json, os, socket, struct, sys
mode, port = sys.argv[1], int(sys.argv[2])
left = int(sys.argv[3]) if len(sys.argv) > 3 else 10**9
hang_flag = os.environ.get("HANG_FLAG", "")  # tcp: once this file exists, the listener closes

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
        while left > 0 and not (hang_flag and os.path.exists(hang_flag)):
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


# -- in the daemon: a start waits on readiness; a hung server is a crash ----------------------


def probed_server(mode: str, port: int, probes: dict, answers: int | None = None, **settings) -> dict:
    """A server running the responder as `mode` on `port` (its default allocation). Its done
    line is never printed: only the readiness probe can say it is ready."""
    script = shared_file("probe_responder.py", RESPONDER)
    args = f"{mode} {port}" + (f" {answers}" if answers is not None else "")
    doc = definition(
        invocation=f"{SERVER_PYTHON} -u {script} {args}",
        done=("this line is never printed",),
        stop={"type": "signal", "value": "SIGTERM"},
        allocations={"default": {"ip": "127.0.0.1", "port": port}},
        **settings,
    )
    doc["probes"] = probes
    return doc


def types(d, uuid: str) -> list[str]:
    return [e["type"] for e in stored_events(d, uuid)]


def test_a_start_is_running_when_the_a2s_probe_answers_with_its_challenge(daemon_process):
    port = free_port()
    doc = probed_server("a2s-challenge", port, {"readiness": {"type": "a2s", "interval": 0.1, "deadline": 20}})
    uuid = doc["settings"]["uuid"]
    d = daemon_process(servers=[doc])
    op = d.wait_operation(power(d, uuid, "start")["id"])
    assert op["status"] == "succeeded", op
    events = stored_events(d, uuid)
    [ready] = [e for e in events if e["type"] == "probe.ready"]
    assert ready["data"]["address"] == f"udp/{port}" and "'probe me'" in ready["data"]["detail"]
    running = [e for e in events if e["type"] == "state.changed" and e["data"]["to_state"] == "running"]
    assert running[-1]["data"]["cause"] == "probe_ready"


def test_a_start_that_never_becomes_ready_fails_with_the_reason(daemon_process):
    port = free_port()
    probes = {"readiness": {"type": "a2s", "interval": 0.2, "timeout": 0.3, "deadline": 1.5}}
    doc = probed_server("a2s", port, probes, answers=0)  # listens, never answers
    uuid = doc["settings"]["uuid"]
    d = daemon_process(servers=[doc])
    op = d.wait_operation(power(d, uuid, "start")["id"])
    assert op["status"] == "failed" and op["reason"].startswith(f"no answer on udp/{port} after 1.5 s"), op
    assert d.wait_state(uuid, "offline")["state"] == "offline"
    eventually(lambda: not processes_under(d.folder), 10, "the unready server's process to be gone")
    assert "probe.ready" not in types(d, uuid) and "server.crashed" not in types(d, uuid)


def test_a_hung_server_is_restarted_under_the_crash_policys_limits(daemon_process, tmp_path):
    port = free_port()
    probes = {
        "readiness": {"type": "tcp", "interval": 0.1, "deadline": 20},
        "liveness": {"type": "tcp", "interval": 0.2, "timeout": 0.3, "failure_threshold": 2},
    }
    policy = {"policy": "on-failure", "max_restarts": 1, "backoff_initial": 0.1, "window": 600}
    # Three connections answered (readiness, then liveness), then its listener closes: alive, hung.
    doc = probed_server("tcp", port, probes, answers=3, restart_policy=policy)
    uuid = doc["settings"]["uuid"]
    folder = tmp_path / "d"
    system = {"root_directory": str(folder / "var"), "crash_detection": {"timeout": 0}}
    d = daemon_process(servers=[doc], folder=folder, system=system)
    assert d.wait_operation(power(d, uuid, "start")["id"])["status"] == "succeeded"
    decided = eventually(
        lambda: [e for e in stored_events(d, uuid) if e["type"] == "crash.decided"],
        30,
        "two crash decisions",
        until=lambda found: len(found) == 2,
    )
    assert decided[0]["data"]["restart"] is True and decided[1]["data"]["restart"] is False
    assert "max_restarts is 1" in decided[1]["data"]["reason"]
    events = stored_events(d, uuid)
    crashes = [e for e in events if e["type"] == "server.crashed"]
    assert len(crashes) == 2 and {e["metadata"]["cause"] for e in crashes} == {"unresponsive"}
    hung = [e for e in events if e["type"] == "probe.hung"]
    assert len(hung) == 2 and hung[0]["data"]["failures"] == 2 and hung[0]["data"]["address"] == f"tcp/{port}"
    # Each hang is told once as a change, never one event per success.
    assert [e["data"]["passing"] for e in events if e["type"] == "probe.changed"] == [False, False]
    assert types(d, uuid).index("probe.hung") < types(d, uuid).index("server.crashed")
    assert d.wait_state(uuid, "offline")["state"] == "offline"


def test_a_server_adopted_by_the_next_daemon_is_probed_again(daemon_process, tmp_path):
    port = free_port()
    flag = SHARED / f"hang-{port}"
    probes = {
        "readiness": {"type": "tcp", "interval": 0.1, "deadline": 20},
        "liveness": {"type": "tcp", "interval": 0.2, "timeout": 0.3, "failure_threshold": 2},
    }
    doc = probed_server("tcp", port, probes, env={"HANG_FLAG": str(flag)})
    uuid = doc["settings"]["uuid"]
    folder = tmp_path / "d"
    first = daemon_process(servers=[doc], folder=folder)
    assert first.wait_operation(power(first, uuid, "start")["id"])["status"] == "succeeded"
    first.stop()  # a clean shutdown leaves the server running
    second = daemon_process(servers=[doc], folder=folder)
    assert second.wait_state(uuid, "running")["state"] == "running"
    flag.write_text("")
    eventually(lambda: "probe.hung" in types(second, uuid), 30, "the adopted server declared hung")
    assert second.wait_state(uuid, "offline")["last_transition"]["cause"] == "unresponsive"


BAD_PROBES = {
    "unknown kind": ({"readiness": {"type": "icmp", "port": 25565}}, "probes.readiness.type"),
    "port out of range": ({"readiness": {"type": "tcp", "port": 70000}}, "probes.readiness.port"),
    "liveness without threshold": ({"liveness": {"type": "tcp", "port": 25565}}, "failure_threshold"),
    "no port and no allocation": ({"readiness": {"type": "a2s"}}, "probes.readiness.port"),
}


@pytest.fixture(scope="module")
def door(module_daemon):
    return module_daemon()


@pytest.mark.parametrize(("probes", "field"), BAD_PROBES.values(), ids=BAD_PROBES.keys())
def test_a_bad_probe_definition_is_422_and_writes_nothing(door, probes, field):
    d = door
    doc = definition()
    doc["probes"] = probes
    before = total_events(d)
    with d.client() as c:
        resp = c.post("/api/servers", json=doc)
        assert field in assert_json_error(resp, 422)
        assert c.get(f"/api/servers/{doc['settings']['uuid']}").status_code == 404
    assert total_events(d) == before
