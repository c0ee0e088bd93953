"""The `http` probe: a GET of `path` whose status must be the expected one.

The server is hostile: only the status line and at most MAX_HEAD bytes of headers are read, the
body never; a redirect is never followed (its status is the answer, compared like any other), so
a probe cannot be sent off the server's own address."""

from __future__ import annotations

import asyncio
import contextlib
import re

from wingman.engine.probes.failure import ProbeFailure

MAX_HEAD = 16 * 1024  # the status line and headers together; a longer head is a failure
STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?\r?\n")


def request(host: str, port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: wingman-probe\r\nConnection: close\r\n\r\n".encode(
            "ascii"
        )
    )


def parse_status_line(line: bytes) -> int:
    """The status of an HTTP/1.x status line; ProbeFailure for anything else."""
    m = STATUS_LINE.fullmatch(line)
    if m is None:
        raise ProbeFailure(f"the reply is not HTTP: {line[:40]!r}")
    return int(m.group(1))


async def probe_http(host: str, port: int, path: str, expected: int) -> str:
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
    except OSError as exc:
        raise ProbeFailure(f"tcp/{port}: {exc.strerror or exc}") from None
    try:
        writer.write(request(host, port, path))
        await writer.drain()
        line = await reader.readuntil(b"\n")
        status = parse_status_line(line)
    except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
        raise ProbeFailure("the reply is not HTTP (no status line within 16 KiB)") from None
    except OSError as exc:
        raise ProbeFailure(f"tcp/{port}: {exc.strerror or exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if status != expected:
        raise ProbeFailure(f"GET {path} answered {status}, not {expected}")
    return f"GET {path} answered {status}"
