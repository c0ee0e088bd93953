"""Websocket delivery: from the commit of a state change to its `status` frame on 1,000 open sockets.

Two server processes are measured in the same run, each with the same 1,000 client sockets held by
this process (one event loop):

- **wingman**: the real app and daemon (a local server that starts and is killed, over and over).
  A store subscriber in the server process notes the time each `state.changed` commits; each
  client notes when its `status` frame for that change arrives. The sockets also receive what a
  Panel gets besides `status` (the server's console lines, pre-boot notes, stats every 2 s).
- **baseline**: a bare Sanic websocket app that, when asked, notes the time and sends one frame to
  every socket in a plain loop: the least any delivery through Sanic's websockets can cost here.

Latency = client receive time - server commit (or send) time, on the machine's one clock. Each
round waits until every socket has its frame before the next change, so the figures are per-change
fan-out latency, not a throughput test. Printed: p50, p99 and max of both, and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.daemon import TOKEN, definition, free_port
from tests.support.websocket import token

HERE = Path(__file__).resolve()


# -- the two servers (run as `bench_ws_delivery.py serve-wingman|serve-baseline PORT DIR`) --------


def serve_wingman(port: int, folder: Path, server_doc: dict) -> None:
    from sanic.response import json as json_response

    from wingman.api.app import PROTOCOL, create_app
    from wingman.engine.config import parse_config

    config = parse_config(
        {
            "token": TOKEN,
            "api": {"host": "127.0.0.1", "port": port},
            "system": {"root_directory": str(folder / "var")},
            "servers": [server_doc],
            "websocket": {"max_sockets_per_server": 5000},
        }
    )
    app = create_app(config, name="wingman_bench")
    commits: list[float] = []
    app.ctx.node.daemon.store.subscribe(
        lambda events: commits.extend(time.time() for ev in events if ev.type == "state.changed")
    )

    @app.get("/bench/times")
    async def times(request):
        return json_response(commits)

    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False, protocol=PROTOCOL)


def serve_baseline(port: int) -> None:
    from sanic import Sanic
    from sanic.response import json as json_response

    app = Sanic("baseline_bench")
    app.config.ACCESS_LOG = False
    sockets: set = set()
    sent: list[float] = []

    @app.websocket("/ws")
    async def ws(request, socket):
        sockets.add(socket)
        try:
            async for _ in socket:
                pass
        finally:
            sockets.discard(socket)

    @app.post("/fire")
    async def fire(request):
        sent.append(time.time())
        frame = json.dumps({"event": "status", "args": ["running"]})
        for socket in list(sockets):
            await socket.send(frame)
        return json_response({"sockets": len(sockets)})

    @app.get("/bench/times")
    async def times(request):
        return json_response(sent)

    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False)


def spawn(kind: str, port: int, folder: Path, extra: str = "") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(HERE), kind, str(port), str(folder), extra],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / f"{kind}.log", "wb"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/bench/times", timeout=1, headers={"Authorization": f"Bearer {TOKEN}"})
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} did not start; see {folder / f'{kind}.log'}")


# -- the clients ---------------------------------------------------------------------------------


class Clients:
    def __init__(self, count: int):
        self.count = count
        self.received: list[list[float]] = []  # per change: the receive time on each socket
        self._waiting: dict[int, asyncio.Event] = {}

    def _note(self, k: int) -> None:
        while len(self.received) <= k:
            self.received.append([])
        self.received[k].append(time.time())
        if len(self.received[k]) == self.count and k in self._waiting:
            self._waiting[k].set()

    async def all_got(self, k: int) -> None:
        event = self._waiting.setdefault(k, asyncio.Event())
        if len(self.received) > k and len(self.received[k]) == self.count:
            return
        await asyncio.wait_for(event.wait(), 120)

    async def reader(self, ws, first_is_initial: bool) -> None:
        k = -1 if first_is_initial else 0
        async for raw in ws:
            if '"status"' not in raw:
                continue
            if k >= 0:
                self._note(k)
            k += 1


async def open_sockets(url: str, count: int, auth: str | None, clients: Clients, first_is_initial: bool):
    sockets, tasks = [], []
    gate = asyncio.Semaphore(64)

    async def one():
        async with gate:
            ws = await connect(url, open_timeout=60, max_size=2**22, ping_interval=None)
            if auth is not None:
                await ws.send(json.dumps({"event": "auth", "args": [auth]}))
                while '"auth success"' not in await ws.recv():
                    pass
            sockets.append(ws)
            tasks.append(asyncio.create_task(clients.reader(ws, first_is_initial)))

    await asyncio.gather(*(one() for _ in range(count)))
    return sockets, tasks


async def run_wingman(port: int, uuid: str, sockets: int, cycles: int) -> list[float]:
    clients = Clients(sockets)
    jwt_token = token(uuid, issued=time.time() + 1)  # after the daemon's start, whatever the clock's second
    ws_list, tasks = await open_sockets(
        f"ws://127.0.0.1:{port}/api/servers/{uuid}/ws", sockets, jwt_token, clients, first_is_initial=True
    )
    k = 0
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as http:
        for _ in range(cycles):
            for action, changes in (("start", 2), ("kill", 1)):
                r = await http.post(f"/api/servers/{uuid}/power", json={"action": action})
                assert r.status_code == 202, r.text
                for _ in range(changes):
                    await clients.all_got(k)
                    k += 1
        commits = (await http.get("/bench/times")).json()
    await close(ws_list, tasks)
    return latencies(commits, clients.received[:k])


async def run_baseline(port: int, sockets: int, fires: int) -> list[float]:
    clients = Clients(sockets)
    ws_list, tasks = await open_sockets(f"ws://127.0.0.1:{port}/ws", sockets, None, clients, first_is_initial=False)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        for k in range(fires):
            r = await http.post("/fire")
            assert r.json()["sockets"] == sockets, r.text
            await clients.all_got(k)
        sent = (await http.get("/bench/times")).json()
    await close(ws_list, tasks)
    return latencies(sent, clients.received[:fires])


async def close(ws_list, tasks) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*(ws.close() for ws in ws_list), return_exceptions=True)


def latencies(origins: list[float], received: list[list[float]]) -> list[float]:
    assert len(origins) >= len(received), (len(origins), len(received))
    return [(t - origin) * 1000 for origin, got in zip(origins, received, strict=False) for t in got]


def summary(name: str, ms: list[float]) -> dict:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    figures = {"p50": statistics.median(ms), "p99": q[98], "max": max(ms)}
    print(
        f"{name:>9}: p50 {figures['p50']:7.2f} ms   p99 {figures['p99']:7.2f} ms   max {figures['max']:7.2f} ms"
        f"   ({len(ms):,} deliveries)"
    )
    return figures


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sockets", type=int, default=1000)
    p.add_argument("--cycles", type=int, default=20, help="start+kill cycles: 3 state changes each")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wingman-bench-ws-"))
    doc = definition(invocation="echo 'Server started'; exec cat", stop={"type": "signal", "value": "SIGTERM"})
    uuid = doc["settings"]["uuid"]

    port = free_port()
    server = spawn("serve-wingman", port, folder, json.dumps(doc))
    try:
        wingman = asyncio.run(run_wingman(port, uuid, args.sockets, args.cycles))
    finally:
        server.terminate()
        server.wait(60)
    port = free_port()
    server = spawn("serve-baseline", port, folder)
    try:
        baseline = asyncio.run(run_baseline(port, args.sockets, args.cycles * 3))
    finally:
        server.terminate()
        server.wait(60)
    print(f"delivery of one change to {args.sockets:,} open websockets (commit -> frame received):")
    w = summary("wingman", wingman)
    b = summary("baseline", baseline)
    print(f"ratio wingman/baseline: p50 {w['p50'] / b['p50']:.2f}, p99 {w['p99'] / b['p99']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-wingman":
        serve_wingman(int(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "serve-baseline":
        serve_baseline(int(sys.argv[2]))
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        main()
