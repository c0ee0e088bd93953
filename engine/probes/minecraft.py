"""The `minecraft` probe: the Java Edition server-list ping (wiki.vg/Server_List_Ping): a
handshake in the status state, a status request, and the JSON status it answers.

Written here rather than taken from mcstatus so that every read is bounded: a length prefix is at
most five bytes, a status at most MAX_STATUS bytes (whatever the server declares), and the parser
raises only ProbeFailure (fuzzed in tests/power/test_probes_parsers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

from wingman.engine.probes.failure import ProbeFailure

MAX_STATUS = 128 * 1024  # a status with a 64x64 favicon is a few tens of KiB
PROTOCOL = -1  # "any version": the server answers its own
MAX_VARINT = 5


@dataclass(frozen=True)
class Status:
    version: str
    online: int | None
    max_players: int | None


def varint(value: int) -> bytes:
    value &= 0xFFFFFFFF
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """(value, position after it); ProbeFailure for a varint cut short or longer than five bytes."""
    value = 0
    for i in range(MAX_VARINT):
        if pos + i >= len(data):
            raise ProbeFailure("the ping reply is cut short")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return (value - (1 << 32) if value & (1 << 31) else value), pos + i + 1
    raise ProbeFailure("the ping reply has a varint longer than five bytes")


def _packet(payload: bytes) -> bytes:
    return varint(len(payload)) + payload


def handshake(host: str, port: int) -> bytes:
    name = host.encode("utf-8")[:255]
    payload = varint(0) + varint(PROTOCOL) + varint(len(name)) + name + port.to_bytes(2, "big") + varint(1)
    return _packet(payload) + _packet(varint(0))  # the handshake, then the status request


def parse_status(packet: bytes) -> Status:
    """A status response packet's body (after its length): id 0, then a string of JSON."""
    packet_id, pos = read_varint(packet)
    if packet_id != 0:
        raise ProbeFailure(f"the ping reply is packet {packet_id}, not a status")
    length, pos = read_varint(packet, pos)
    if length < 0 or pos + length > len(packet):
        raise ProbeFailure("the ping reply's status is cut short")
    try:
        doc = json.loads(packet[pos : pos + length].decode("utf-8"))
    except (ValueError, RecursionError):
        raise ProbeFailure("the ping reply's status is not JSON") from None
    if not isinstance(doc, dict):
        raise ProbeFailure("the ping reply's status is not a JSON object")
    version, players = doc.get("version"), doc.get("players")
    name = version.get("name") if isinstance(version, dict) else None
    online = players.get("online") if isinstance(players, dict) else None
    most = players.get("max") if isinstance(players, dict) else None
    return Status(
        name if isinstance(name, str) else "?",
        online if type(online) is int else None,
        most if type(most) is int else None,
    )


async def _read_varint(reader: asyncio.StreamReader) -> int:
    raw = b""
    for _ in range(MAX_VARINT):
        raw += await reader.readexactly(1)
        if not raw[-1] & 0x80:
            return read_varint(raw)[0]
    raise ProbeFailure("the ping reply has a varint longer than five bytes")


async def probe_minecraft(host: str, port: int) -> str:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise ProbeFailure(f"tcp/{port}: {exc.strerror or exc}") from None
    try:
        writer.write(handshake(host, port))
        await writer.drain()
        length = await _read_varint(reader)
        if not 0 < length <= MAX_STATUS:
            raise ProbeFailure(f"the ping reply declares {length} bytes (at most {MAX_STATUS})")
        status = parse_status(await reader.readexactly(length))
    except asyncio.IncompleteReadError:
        raise ProbeFailure("the server closed the connection before its status") from None
    except OSError as exc:
        raise ProbeFailure(f"tcp/{port}: {exc.strerror or exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    players = f"{status.online}/{status.max_players} players" if status.online is not None else "players unknown"
    return f"{status.version[:60]!r}, {players}"
