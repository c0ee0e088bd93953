"""Accepted power requests per second over a real socket, against a bare authenticated GET.

Starts `wingman serve` on a temp folder with some servers, then sends `kill` requests (each one
is a durable `power.requested` before its 202, then a background operation) from concurrent
clients. The baseline is `GET /api/servers/{uuid}` on the same daemon, in the same run.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import TOKEN, DaemonProcess, definition  # noqa: E402


async def hammer(url: str, make_request, total: int, concurrency: int) -> float:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
        sent = 0

        async def worker():
            nonlocal sent
            while sent < total:
                sent += 1
                r = await make_request(c, sent)
                assert r.status_code < 300, r.text

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return total / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--servers", type=int, default=50)
    args = p.parse_args()
    servers = [definition() for _ in range(args.servers)]
    uuids = [s["settings"]["uuid"] for s in servers]
    daemon = DaemonProcess(Path(tempfile.mkdtemp()), servers=servers).start()
    try:
        get = asyncio.run(hammer(daemon.url, lambda c, i: c.get(f"/api/servers/{uuids[i % len(uuids)]}"),
                                 args.requests, args.concurrency))
        post = asyncio.run(hammer(daemon.url, lambda c, i: c.post(f"/api/servers/{uuids[i % len(uuids)]}/power",
                                                                    json={"action": "kill"}),
                                  args.requests, args.concurrency))
    finally:
        daemon.stop()
    print(f"GET /api/servers/{{uuid}}: {get:,.0f} requests/s (baseline)")
    print(f"POST .../power kill (202 after a durable event): {post:,.0f} requests/s")
    print(f"ratio power/baseline: {post / get:.2f}")


if __name__ == "__main__":
    main()
