"""The `tcp` probe: the server accepts a connection on its port. Nothing is read or written."""

from __future__ import annotations

import asyncio
import contextlib

from wingman.engine.probes.failure import ProbeFailure


async def probe_tcp(host: str, port: int) -> str:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise ProbeFailure(f"tcp/{port}: {exc.strerror or exc}") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return "connected"
