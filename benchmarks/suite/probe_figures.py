"""What liveness probes cost: accepted `kill` requests per second on a daemon while 1,000 of its
servers run with a TCP liveness probe every 5 s, against the same daemon with the same number of
servers running without probes (before and after the probed phase), the same wrk settings, in
the same run. The noise is the unprobed phase after against the one before.

The servers are `sleep` processes (a game server's own work is not what is measured); the probed
ones' allocations all point at one TCP listener of the benchmark's, which accepts and closes. The
kills go to other servers, which are offline (what metrics_figures measures too). Utilization
sampling is slowed to once a minute in both phases: with a thousand servers running it is the
daemon's largest cost (metrics_figures and the latency group measure it), not the probes'."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.suite import wrk
from benchmarks.suite.figures import Figure
from tests.support.daemon import TOKEN, DaemonProcess, definition, free_port, kill_leftovers

PROBE_EVERY = 5.0  # seconds
LISTENER = """
import socket, sys
s = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=1024)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""


def _server(port: int, probed: bool) -> dict:
    doc = definition(invocation="sleep 86400", done=(), stop={"type": "signal", "value": "SIGKILL"})
    doc["settings"]["allocations"] = {"default": {"ip": "127.0.0.1", "port": port}}
    if probed:
        doc["probes"] = {
            "readiness": {"type": "tcp", "interval": 0.5, "timeout": 2, "deadline": 600},
            "liveness": {"type": "tcp", "interval": PROBE_EVERY, "timeout": 2, "failure_threshold": 3},
        }
    return doc


def _all(client: httpx.Client, uuids: list[str], action: str, timeout: float = 900) -> None:
    """`action` on every server, and wait for every outcome."""
    ops = []
    for uuid in uuids:
        r = client.post(f"/api/servers/{uuid}/power", json={"action": action})
        r.raise_for_status()
        ops.append(r.json()["id"])
    deadline = time.monotonic() + timeout
    for op in ops:
        while (body := client.get(f"/api/operations/{op}").json())["status"] not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{action}: operation {op} has no outcome after {timeout:g} s")
            time.sleep(0.05)
        if body["status"] != "succeeded":
            raise RuntimeError(f"{action} of {body.get('server')} failed: {body.get('reason')}")


def probe_figures(smoke: bool) -> list[Figure]:
    return measure(*((2, 16, 20, 50) if smoke else (10, 32, 200, 1000)))


def measure(seconds: int, connections: int, targets: int, servers: int) -> list[Figure]:
    """The figures at a given size (`python -c "...; measure(10, 32, 200, 250)"` for one between)."""
    port = free_port()
    listener = subprocess.Popen([sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE, text=True)
    assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
    kill_targets = [definition() for _ in range(targets)]
    paths = [f"/api/servers/{d['settings']['uuid']}/power" for d in kill_targets]
    plain = [_server(port, probed=False) for _ in range(servers)]
    probed = [_server(port, probed=True) for _ in range(servers)]
    daemon = DaemonProcess(
        Path(tempfile.mkdtemp(prefix="wingman-bench-probes-")), extra_config={"utilization": {"interval_seconds": 60}}
    )
    daemon.start(timeout=300)
    try:
        with httpx.Client(base_url=daemon.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
            # Through the API, not the config file: a start reads its server's definition again from
            # the config file, which with 2,200 servers in it costs more than the start itself.
            for doc in kill_targets + plain + probed:
                client.post("/api/servers", json=doc).raise_for_status()
            t0 = time.perf_counter()
            _all(client, [d["settings"]["uuid"] for d in plain], "start")
            started_plain = time.perf_counter() - t0
            unprobed = wrk.run(daemon.url, paths, 1, connections, seconds, token=TOKEN)
            unprobed_again = wrk.run(daemon.url, paths, 1, connections, seconds, token=TOKEN)
            _all(client, [d["settings"]["uuid"] for d in plain], "kill")
            t0 = time.perf_counter()
            _all(client, [d["settings"]["uuid"] for d in probed], "start")
            started_probed = time.perf_counter() - t0
            time.sleep(PROBE_EVERY)  # every watch has begun probing (each waits up to one interval first)
            probing = wrk.run(daemon.url, paths, 1, connections, seconds, token=TOKEN)
            hung = sum(1 for line in daemon.read_log().splitlines() if "server declared hung" in line)
            _all(client, [d["settings"]["uuid"] for d in probed], "kill")
            # The unprobed servers again: the probed phase sits between two unprobed ones, so a
            # daemon that speeds up as it warms does not pass for probes that cost nothing.
            _all(client, [d["settings"]["uuid"] for d in plain], "start")
            unprobed_after = wrk.run(daemon.url, paths, 1, connections, seconds, token=TOKEN)
            _all(client, [d["settings"]["uuid"] for d in plain], "kill")
    finally:
        daemon.stop()
        kill_leftovers(daemon.folder)
        listener.kill()
        listener.wait()
    baseline = (unprobed_again.rate + unprobed_after.rate) / 2  # the first unprobed run is the warm-up
    settings = f"wrk -t1 -c{connections} -d{seconds}s, {targets} offline servers killed"
    figures = [
        Figure(
            f"accepted kills/s, {servers} servers running, probed every {PROBE_EVERY:g} s ({settings})",
            probing.rate,
            baseline,
            "requests/s",
            baseline_label=f"the same daemon, {servers} servers running unprobed, before and after",
            target_ratio=0.95,
            raw={
                "probing": probing.__dict__,
                "unprobed": unprobed.__dict__,
                "unprobed_again": unprobed_again.__dict__,
                "unprobed_after": unprobed_after.__dict__,
                "started_unprobed_s": started_plain,
                "started_probed_s": started_probed,
                "declared_hung": hung,
            },
        ),
        Figure(
            "  the noise: the unprobed phase after the probed one",
            unprobed_after.rate,
            unprobed_again.rate,
            "requests/s",
            baseline_label="the unprobed phase before it",
        ),
        Figure(
            f"  {servers} probed servers started (readiness by TCP)", started_probed, None, "s", lower_is_better=True
        ),
        Figure(f"  {servers} unprobed servers started (no done line)", started_plain, None, "s", lower_is_better=True),
    ]
    for r in (unprobed, unprobed_again, probing, unprobed_after):
        if r.http_errors or r.socket_errors or not r.requests:
            figures[0].error = f"{r.http_errors} HTTP errors, {r.socket_errors} socket errors in {r.requests} requests"
    if hung:
        figures[0].error = f"{hung} probed server(s) declared hung while the listener answered"
    return figures
