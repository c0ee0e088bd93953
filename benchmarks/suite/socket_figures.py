"""Websockets and connections, as a Panel's users make them: what the daemon's memory keeps of each
closed connection (goal: nothing), and how long the API answers while many sockets authenticate
at once.

- Retained bytes per closed connection: the daemon's RSS after a warm-up round of as many
  connections, and after the measured ones, once it has closed them all (benchmarks/suite/churn.py,
  which tests/websocket/test_ws_soak.py also uses). The figure is the growth divided by the connections.
  The allocator moves the RSS in steps of 1-4 MiB on its own, now and then (the count of live
  objects does not grow): up to 2.5 KB a connection at the full size, more at the smoke size.
  Sanic's own protocol kept about 18 KB.
- `GET /api/system` while sockets authenticate: one client asks, one request after the other,
  while SOCKETS websockets, opened beforehand in another process (benchmarks/suite/auth_storm.py),
  all send `auth` at once; the p99 over the rounds. The baseline is the same client against the
  same daemon with the same sockets open and idle, just before.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.suite import churn
from benchmarks.suite.figures import Figure
from tests.support.daemon import REPO, DaemonProcess, definition

KINDS = (
    ("authenticated websockets", churn.authenticated_socket),
    ("websockets that never authenticate", churn.unauthenticated_socket),
    ("HTTP keep-alive connections", churn.keepalive_http),
)


class _Asker(threading.Thread):
    """`GET /api/system` one after the other; the latency of each, with the time it started."""

    def __init__(self, d: DaemonProcess):
        super().__init__(daemon=True)
        self.d = d
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.d.client() as c:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                c.get("/api/system").raise_for_status()
                self.samples.append((t0, time.perf_counter() - t0))

    def between(self, start: float, end: float) -> list[float]:
        return [s for t, s in self.samples if start <= t <= end]


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def _storm_round(d: DaemonProcess, server: str, sockets: int, asker: _Asker) -> tuple[list[float], list[float], float]:
    """(latencies while idle, latencies while authenticating, the storm's seconds)."""
    storm = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.suite.auth_storm", str(d.port), server, str(sockets)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if storm.stdout.readline().strip() != "open":
            raise RuntimeError("the sockets did not open")
        idle_from = time.perf_counter()
        time.sleep(1.0)  # a measuring window, not a wait for anything
        go = time.perf_counter()
        storm.stdin.write("go\n")
        storm.stdin.flush()
        line = storm.stdout.readline().split()
        done = time.perf_counter()
        if not line or line[0] != "done":
            raise RuntimeError("the sockets did not all authenticate")
        storm.wait(60)
        return asker.between(idle_from, go), asker.between(go, done), float(line[1])
    finally:
        if storm.poll() is None:
            storm.kill()
            storm.wait()


def auth_storm_figures(sockets: int, rounds: int) -> list[Figure]:
    server = definition()
    uuid = server["settings"]["uuid"]
    d = DaemonProcess(
        Path(tempfile.mkdtemp(prefix="wingman-bench-storm-")),
        servers=[server],
        extra_config={"websocket": {"max_sockets_per_server": sockets + 100}},
    ).start(timeout=120)
    asker = _Asker(d)
    asker.start()
    idle, busy, storms = [], [], []
    try:
        for _ in range(rounds):
            i, b, s = _storm_round(d, uuid, sockets, asker)
            idle += i
            busy += b
            storms.append(s)
            churn.drained_rss(d, staying=1)  # the round's sockets all closed (the asker's stays) before the next
    finally:
        asker.stop.set()
        asker.join(30)
        d.stop()
    if not busy or not idle:
        raise RuntimeError("no request was answered during a round")
    return [
        Figure(
            f"p99 of GET /api/system while {sockets} sockets authenticate",
            _p99(busy),
            _p99(idle),
            "ms",
            baseline_label="the same, the sockets open and idle",
            target_value=25,
            lower_is_better=True,
            raw={
                "requests_while_authenticating": len(busy),
                "requests_idle": len(idle),
                "max_ms": max(busy) * 1000,
                "storm_seconds": storms,
            },
        )
    ]


def retained_figures(warm: int, count: int) -> list[Figure]:
    figures = []
    for label, kind in KINDS:
        server = definition()
        d = DaemonProcess(
            Path(tempfile.mkdtemp(prefix="wingman-bench-churn-")), servers=[server], extra_config=churn.DAEMON_CONFIG
        ).start(timeout=120)
        try:
            kept = churn.retained(d, server["settings"]["uuid"], kind, warm=warm, count=count)
        finally:
            d.stop()
        figures.append(
            Figure(
                f"bytes retained per closed connection, {count} {label}",
                kept.per_connection,
                None,
                "bytes",
                target_value=1024,
                lower_is_better=True,
                raw={"rss_before": kept.rss_before, "rss_after": kept.rss_after, "warm": warm},
            )
        )
    return figures


def socket_figures(smoke: bool) -> list[Figure]:
    warm, count = (500, 500) if smoke else (3000, 3000)
    sockets, rounds = (100, 1) if smoke else (500, 5)
    return retained_figures(warm, count) + auth_storm_figures(sockets, rounds)
