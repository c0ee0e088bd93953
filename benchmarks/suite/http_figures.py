"""Accepted power requests over HTTP: `kill` on a daemon with many servers (each 202 only after
its `power.requested` is durable), against a bare Sanic JSON POST, the same wrk settings, in the
same run. The daemon and the baseline each run in their own process, as does wrk."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.suite import wrk
from benchmarks.suite.figures import Figure
from tests.support.daemon import REPO, TOKEN, DaemonProcess, definition, free_port


def _bare_sanic(seconds: float, connections: int) -> wrk.WrkResult:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.suite.bare_sanic", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(url + "/api/servers/x/power", json={"action": "kill"}, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the bare Sanic app did not start") from None
                time.sleep(0.1)
        return wrk.run(url, [f"/api/servers/{i}/power" for i in range(100)], 1, connections, seconds)
    finally:
        proc.terminate()
        proc.wait(10)


def _wingman(servers: int, seconds: float, connections: int) -> tuple[wrk.WrkResult, int]:
    """wrk against the daemon; also the events the daemon stored (every request's, and its work)."""
    defs = [definition() for _ in range(servers)]
    paths = [f"/api/servers/{d['settings']['uuid']}/power" for d in defs]
    daemon = DaemonProcess(Path(tempfile.mkdtemp(prefix="wingman-bench-http-")), servers=defs).start(timeout=300)
    try:
        result = wrk.run(daemon.url, paths, 1, connections, seconds, token=TOKEN)
        with daemon.client() as c:
            stored = c.get("/api/events", params={"type": "power.requested", "limit": 1}).json()
    finally:
        daemon.stop()
    return result, len(stored.get("events", []))


def http_figures(smoke: bool) -> list[Figure]:
    seconds, connections = (2, 32) if smoke else (10, 32)
    big, small = (50, 10) if smoke else (1000, 10)
    base = _bare_sanic(seconds, connections)
    ours, _ = _wingman(big, seconds, connections)
    ours_small, _ = _wingman(small, seconds, connections)
    base_after = _bare_sanic(seconds, connections)
    baseline = (base.rate + base_after.rate) / 2
    settings = f"wrk -t1 -c{connections} -d{seconds}s"
    raw = lambda r: {**r.__dict__, "rate": r.rate}  # noqa: E731
    figures = [
        Figure(
            f"accepted kill requests/s, {big} servers ({settings})",
            ours.rate,
            baseline,
            "requests/s",
            baseline_label="bare Sanic JSON POST, same wrk",
            target_ratio=0.35,
            raw={"wingman": raw(ours), "baseline_before": raw(base), "baseline_after": raw(base_after)},
        ),
        Figure(
            "  p99 of the 202 at that load",
            ours.p99_us / 1000,
            base.p99_us / 1000,
            "ms",
            baseline_label="bare Sanic p99",
            target_value=25,
            lower_is_better=True,
        ),
        Figure(
            f"accepted kill requests/s, {small} servers ({settings})",
            ours_small.rate,
            baseline,
            "requests/s",
            baseline_label="bare Sanic JSON POST, same wrk",
            raw={"wingman": raw(ours_small)},
        ),
    ]
    for f, r in ((figures[0], ours), (figures[2], ours_small)):
        if r.http_errors or r.socket_errors or not r.requests:
            f.error = f"{r.http_errors} HTTP errors, {r.socket_errors} socket errors in {r.requests} requests"
    return figures
