"""The `a2s` probe: Valve's A2S_INFO query over UDP (developer.valvesoftware.com/wiki/Server_queries),
with the challenge that servers since 2020 ask for.

Written here rather than taken from python-a2s: the reply is parsed by a small function that
raises only ProbeFailure whatever it is given (fuzzed in tests/power/test_probes_parsers.py), and
one datagram is read per step, so a reply is bounded by what UDP carries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from wingman.engine.probes.failure import ProbeFailure

HEADER = b"\xff\xff\xff\xff"
QUERY = HEADER + b"TSource Engine Query\x00"
CHALLENGE = 0x41  # 'A': send the query again with these four bytes
INFO = 0x49  # 'I': Source's reply
INFO_GOLDSRC = 0x6D  # 'm': the obsolete GoldSource reply, still sent by some servers
MAX_CHALLENGES = 3  # a server that asks again and again is not answering
MAX_STRING = 1024


@dataclass(frozen=True)
class Info:
    name: str
    map: str
    players: int
    max_players: int


@dataclass(frozen=True)
class Challenge:
    token: bytes


def query(challenge: bytes = b"") -> bytes:
    return QUERY + challenge


def parse_reply(data: bytes) -> Info | Challenge:
    """One datagram of the server's: its info, or a challenge to send back. ProbeFailure otherwise."""
    if len(data) < 5 or data[:4] != HEADER:
        raise ProbeFailure("the reply is not A2S (no single-packet header)")
    kind, body = data[4], data[5:]
    if kind == CHALLENGE:
        if len(body) < 4:
            raise ProbeFailure("the A2S challenge is cut short")
        return Challenge(body[:4])
    if kind == INFO:
        reader = _Reader(body)
        reader.take(1)  # the protocol version
        name, map_name, _folder, _game = reader.string(), reader.string(), reader.string(), reader.string()
        reader.take(2)  # the Steam app id
        players, max_players = reader.take(1)[0], reader.take(1)[0]
        return Info(name, map_name, players, max_players)
    if kind == INFO_GOLDSRC:
        reader = _Reader(body)
        _address, name, map_name, _folder, _game = (reader.string() for _ in range(5))
        players, max_players = reader.take(1)[0], reader.take(1)[0]
        return Info(name, map_name, players, max_players)
    raise ProbeFailure(f"the reply is not A2S_INFO (type byte {kind:#04x})")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProbeFailure("the A2S reply is cut short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def string(self) -> str:
        end = self.data.find(b"\x00", self.pos, self.pos + MAX_STRING)
        if end < 0:
            raise ProbeFailure("the A2S reply has an unterminated or too long string")
        out = self.data[self.pos : end].decode("utf-8", "replace")
        self.pos = end + 1
        return out


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue(maxsize=8)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if not self.queue.full():  # a flood is dropped, not queued
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable
        if not self.queue.full():
            self.queue.put_nowait(exc)


async def probe_a2s(host: str, port: int) -> str:
    loop = asyncio.get_running_loop()
    try:
        # Connected: the kernel drops datagrams from any other address.
        transport, protocol = await loop.create_datagram_endpoint(_Datagrams, remote_addr=(host, port))
    except OSError as exc:
        raise ProbeFailure(f"udp/{port}: {exc.strerror or exc}") from None
    try:
        token = b""
        for _ in range(MAX_CHALLENGES + 1):
            transport.sendto(query(token))
            got = await protocol.queue.get()
            if isinstance(got, Exception):
                raise ProbeFailure(f"udp/{port}: {getattr(got, 'strerror', None) or got}")
            reply = parse_reply(got)
            if isinstance(reply, Info):
                return f"{reply.name[:60]!r} on {reply.map[:60]!r}, {reply.players}/{reply.max_players} players"
            token = reply.token
        raise ProbeFailure(f"udp/{port}: the server asked for a challenge {MAX_CHALLENGES + 1} times")
    finally:
        transport.close()
