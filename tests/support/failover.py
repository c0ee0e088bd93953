"""Load through a failover, for the failover test and the benchmark: power requests at a steady
rate from a real HTTP client while a failover runs, each answer noted with when it came, and the
longest time in which no request was acknowledged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tests.support.daemon import TOKEN

RATE = 200  # requests a second
BEFORE, AFTER = 2.0, 2.0  # seconds of load before the kill, and after service is back


@dataclass
class Sent:
    at: float  # monotonic, when sent
    status: int  # 0: no answer (the client gave up)
    operation: str | None
    seconds: float = 0.0  # until the answer


async def request(client: httpx.AsyncClient, server: str, action: str, log: list[Sent]) -> None:
    at = time.monotonic()
    try:
        resp = await client.post(f"/api/servers/{server}/power", json={"action": action, "wait_seconds": 0})
    except httpx.HTTPError:
        log.append(Sent(at, 0, None, time.monotonic() - at))
        return
    operation = resp.json().get("id") if resp.status_code == 202 else None
    log.append(Sent(at, resp.status_code, operation, time.monotonic() - at))


async def drive(url: str, servers: list[str], failover: Callable[[], None], log: list[Sent]) -> tuple[float, float]:
    """Requests at RATE until service has been back for AFTER seconds; `failover` runs (in a
    thread) BEFORE seconds in. Returns when the primary was killed and when the load stopped."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10, limits=limits) as client:
        tasks: set[asyncio.Task] = set()
        start = time.monotonic()
        killed_at: float | None = None
        failing: asyncio.Task | None = None
        promoted_at: float | None = None
        n = 0
        deadline = start + 40  # bounded whatever happens
        while time.monotonic() < deadline:
            now = time.monotonic()
            if failing is None and now - start >= BEFORE:
                killed_at = now
                failing = asyncio.create_task(asyncio.to_thread(failover))
            if failing is not None and failing.done() and promoted_at is None:
                promoted_at = now
                failing.result()  # the kill and the promotion themselves must have worked
            if promoted_at is not None:
                back = [s.at for s in log if s.at > promoted_at and s.status == 202]
                if back and now - min(back) >= AFTER:
                    break
            server, action = servers[n % len(servers)], ("kill", "stop")[n // len(servers) % 2]
            task = asyncio.create_task(request(client, server, action, log))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, start + n / RATE - time.monotonic()))
        await asyncio.gather(*tasks)
    assert killed_at is not None
    return killed_at, time.monotonic()


def gap(log: list[Sent], killed_at: float) -> float:
    """Seconds without service: the longest time, from a second before the kill on, in which no
    client received a 202 (whether its requests were refused, or waited)."""
    acknowledged = sorted(s.at + s.seconds for s in log if s.status == 202 and s.at + s.seconds >= killed_at - 1)
    return max((b - a for a, b in zip(acknowledged, acknowledged[1:], strict=False)), default=0.0)
