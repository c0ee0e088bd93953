"""One probe attempt of any kind, under its timeout: an Outcome, never an exception (but a
cancellation, which is the caller's)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from wingman.engine.probes.a2s import probe_a2s
from wingman.engine.probes.failure import ProbeFailure
from wingman.engine.probes.http import probe_http
from wingman.engine.probes.minecraft import probe_minecraft
from wingman.engine.probes.spec import ProbeSpec
from wingman.engine.probes.tcp import probe_tcp

_ANY_ADDRESS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # what the server answered, or how it failed, in words


def probe_host(allocation_ip: str) -> str:
    """Where to send a probe for a server bound to `allocation_ip`: a wildcard is this host."""
    return _ANY_ADDRESS.get(allocation_ip, allocation_ip)


def where(spec: ProbeSpec) -> str:
    """`udp/27015`: how a reason names the probed port."""
    return f"{spec.transport}/{spec.port}"


async def attempt(spec: ProbeSpec, host: str) -> Outcome:
    port = spec.port
    if port is None or spec.type == "done_line":
        raise ValueError(f"a {spec.type} probe with no port is not a network probe")
    try:
        async with asyncio.timeout(spec.timeout):
            if spec.type == "tcp":
                detail = await probe_tcp(host, port)
            elif spec.type == "http":
                detail = await probe_http(host, port, spec.path, spec.status)
            elif spec.type == "a2s":
                detail = await probe_a2s(host, port)
            else:
                detail = await probe_minecraft(host, port)
    except TimeoutError:
        return Outcome(False, f"no answer on {where(spec)} within {spec.timeout:g} s")
    except ProbeFailure as exc:
        return Outcome(False, str(exc))
    return Outcome(True, detail)
