"""Many websockets authenticating at once, as after a Panel's page reload across a node, in a
process of its own (so that its clients' Python does not share the measuring process's loop).

    python -m benchmarks.suite.auth_storm PORT SERVER SOCKETS

Opens SOCKETS websockets to SERVER, prints `open`, waits for a line on stdin, then sends `auth`
on every socket at once and waits for each to get `auth success`, `status` and `stats`; prints
`done <seconds>` and closes them all.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect

from tests.support.websocket import frame, token

TIMEOUT = 120  # waiting only


async def _authenticated(ws, jwt: str) -> None:
    await ws.send(frame("auth", jwt))
    events = [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["event"] for _ in range(3)]
    if events != ["auth success", "status", "stats"]:
        raise RuntimeError(f"a socket got {events}")


async def main(port: int, server: str, sockets: int) -> None:
    url = f"ws://127.0.0.1:{port}/api/servers/{server}/ws"
    opened = []
    for _ in range(sockets):  # one after the other: the opening is not what is measured
        opened.append(await connect(url, open_timeout=TIMEOUT, max_queue=None))
    tokens = [token(server) for _ in opened]
    print("open", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    t0 = time.perf_counter()
    await asyncio.gather(*(_authenticated(ws, jwt) for ws, jwt in zip(opened, tokens, strict=False)))
    print(f"done {time.perf_counter() - t0:.3f}", flush=True)
    await asyncio.gather(*(ws.close() for ws in opened))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
