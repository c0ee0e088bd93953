"""Many running containers under one daemon: is it still responsive, and are its threads bounded?

Starts `wingman serve` with N docker servers (the busybox test image from .ci/docker.sh), starts
them all through the power endpoint, then measures `GET /api/servers/{uuid}` latency and a
console round trip while they run, and the daemon's thread count (from /proc). The baseline is
the same GET on the same daemon before any container runs. Removes every container it made.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.daemon import TOKEN, DaemonProcess, definition

LOOP = 'echo ready; while read line; do [ "$line" = stop ] && exit 0; echo "said $line"; done'


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def latencies(client: httpx.Client, uuids: list[str], n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        assert client.get(f"/api/servers/{uuids[i % len(uuids)]}").status_code == 200
        out.append((time.perf_counter() - t0) * 1000)
    return out


def describe(ms: list[float]) -> str:
    ms = sorted(ms)
    return f"p50 {statistics.median(ms):.1f} ms, p95 {ms[int(len(ms) * 0.95) - 1]:.1f} ms, max {ms[-1]:.1f} ms"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--servers", type=int, default=200)
    p.add_argument("--image", default="local/busybox:test")
    args = p.parse_args()
    servers = [
        definition(
            invocation=LOOP,
            done=("ready",),
            runtime="docker",
            container={"image": args.image},
            stop={"type": "command", "value": "stop"},
        )
        for _ in range(args.servers)
    ]
    uuids = [s["settings"]["uuid"] for s in servers]
    daemon = DaemonProcess(Path(tempfile.mkdtemp()), servers=servers).start(timeout=120)
    sdk = docker.APIClient(base_url="unix:///var/run/docker.sock", version="auto")
    try:
        with httpx.Client(base_url=daemon.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as c:
            idle = latencies(c, uuids, 300)
            idle_threads = threads(daemon.proc.pid)
            t0 = time.perf_counter()
            ops = [c.post(f"/api/servers/{u}/power", json={"action": "start"}).json()["id"] for u in uuids]
            during = latencies(c, uuids, 100)
            for op in ops:
                body = daemon.wait_operation(op, timeout=600)
                assert body["status"] == "succeeded", body
            started = time.perf_counter() - t0
            busy = latencies(c, uuids, 300)
            t1 = time.perf_counter()
            for u in uuids:
                assert c.post(f"/api/servers/{u}/commands", json={"commands": ["ping"]}).status_code == 204
            while not all("said ping" in c.get(f"/api/servers/{u}/logs").json()["data"] for u in uuids):
                time.sleep(0.05)
            echo = time.perf_counter() - t1
            running_threads = threads(daemon.proc.pid)
            print(f"{args.servers} docker servers started through the API in {started:.1f} s")
            print(f"GET /api/servers/{{uuid}}, no container running (baseline): {describe(idle)}")
            print(f"GET while {args.servers} starts were in flight: {describe(during)}")
            print(
                f"GET with {args.servers} containers running: {describe(busy)}; "
                f"p50 ratio to baseline {statistics.median(busy) / statistics.median(idle):.2f}"
            )
            print(f"a command to every server and every answer in the logs: {echo:.2f} s")
            print(f"daemon threads: {idle_threads} idle, {running_threads} with {args.servers} containers running")
            for u in uuids:
                c.post(f"/api/servers/{u}/power", json={"action": "kill"})
    finally:
        daemon.stop()
        for u in uuids:
            try:
                sdk.remove_container(f"wingman-{u}", force=True)
            except docker.errors.NotFound:
                pass


if __name__ == "__main__":
    main()
