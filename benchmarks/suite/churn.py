"""Connections opened and closed against a running daemon, as a Panel's users make them all day, and
what the daemon's memory keeps of them.

Three kinds of connection: websockets that authenticate (and get `auth success`, `status`,
`stats`), websockets that never authenticate (a frame, answered `jwt error`), and HTTP keep-alive
connections (three `GET /api/system` each). Each is driven by a real client over a real socket,
`concurrency` at a time, and checked to have got its answers, so a churn that did nothing fails
instead of measuring nothing.

`retained` measures the daemon's RSS after a warm-up round (the allocator's pools grown to the
churn's size) and again after the measured churn, each time once the daemon has closed every
client connection. Used by the suite's `sockets` group and by tests/websocket/test_ws_soak.py.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import psutil
from websockets.asyncio.client import connect

from tests.support.daemon import TOKEN, DaemonProcess
from tests.support.websocket import frame, token, ws_url

# The daemon's per-server socket limit must let `concurrency` sockets in while the daemon is still
# releasing those just closed: the soak's daemons are configured with this.
SOCKET_LIMIT = 1000
DAEMON_CONFIG = {"websocket": {"max_sockets_per_server": SOCKET_LIMIT}}
DRAIN_SECONDS = 60  # how long the daemon may take to close every connection: waiting only
_TLS = ssl.create_default_context()  # one for every HTTP client (httpx would build one per client)

Churn = Callable[[DaemonProcess, str], Awaitable[None]]


async def authenticated_socket(d: DaemonProcess, server: str) -> None:
    async with connect(ws_url(d, server), open_timeout=DRAIN_SECONDS) as ws:
        await ws.send(frame("auth", token(server)))
        events = [json.loads(await asyncio.wait_for(ws.recv(), DRAIN_SECONDS))["event"] for _ in range(3)]
        if events != ["auth success", "status", "stats"]:
            raise AssertionError(f"an authenticated socket got {events}")


async def unauthenticated_socket(d: DaemonProcess, server: str) -> None:
    async with connect(ws_url(d, server), open_timeout=DRAIN_SECONDS) as ws:
        await ws.send(frame("send stats"))
        answer = json.loads(await asyncio.wait_for(ws.recv(), DRAIN_SECONDS))
        if answer["event"] != "jwt error":
            raise AssertionError(f"a socket that never authenticated got {answer}")


async def keepalive_http(d: DaemonProcess, server: str) -> None:
    async with httpx.AsyncClient(
        base_url=d.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        verify=_TLS,
        limits=httpx.Limits(max_connections=1),
        timeout=DRAIN_SECONDS,
    ) as client:
        for _ in range(3):  # one connection, kept alive between the requests
            (await client.get("/api/system")).raise_for_status()


async def churn(d: DaemonProcess, server: str, one: Churn, count: int, concurrency: int) -> None:
    """`count` connections of one kind, `concurrency` open at a time; each must get its answers."""
    left = iter(range(count))

    async def worker() -> None:
        for _ in left:
            await one(d, server)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def client_connections(d: DaemonProcess) -> int:
    """The daemon's open TCP connections on its API port (its listening socket aside)."""
    return sum(
        1
        for c in psutil.Process(d.proc.pid).net_connections("tcp")
        if c.laddr and c.laddr.port == d.port and c.status != psutil.CONN_LISTEN
    )


def drained_rss(d: DaemonProcess, staying: int = 0) -> int:
    """The daemon's RSS once it has closed every client connection (but `staying` of them)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while client_connections(d) > staying:
        if time.monotonic() > deadline:
            raise AssertionError(f"the daemon still holds {client_connections(d)} connections after {DRAIN_SECONDS} s")
        time.sleep(0.05)
    return psutil.Process(d.proc.pid).memory_info().rss


@dataclass
class Retained:
    connections: int
    rss_before: int
    rss_after: int

    @property
    def grown(self) -> int:
        return self.rss_after - self.rss_before

    @property
    def per_connection(self) -> float:
        return self.grown / self.connections

    def describe(self) -> str:
        return (
            f"RSS {self.rss_before / 2**20:.1f} -> {self.rss_after / 2**20:.1f} MiB over {self.connections} "
            f"connections ({self.per_connection:+.0f} bytes each)"
        )


def retained(d: DaemonProcess, server: str, one: Churn, *, warm: int, count: int, concurrency: int = 50) -> Retained:
    """What the daemon's RSS kept of `count` closed connections, after `warm` of the same kind."""
    asyncio.run(churn(d, server, one, warm, concurrency))
    before = drained_rss(d)
    asyncio.run(churn(d, server, one, count, concurrency))
    return Retained(count, before, drained_rss(d))
