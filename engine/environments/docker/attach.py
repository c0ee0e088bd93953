"""A container's console over Docker's `attach` connection, read by the event loop itself.

The SDK hijacks the HTTP connection in a worker thread (`take_attach_socket` turns it into a plain
non-blocking socket the loop owns), and the multiplexed stream (tty=False: 8-byte frame headers)
is split here into lines, stdout and stderr apart, each bounded by engine.console.lines.
"""

from __future__ import annotations

import socket

import structlog

from wingman.engine.console.lines import LineSplitter
from wingman.engine.environments.base import ConsoleSink
from wingman.engine.environments.docker.sdk import SdkSocket

log = structlog.get_logger("wingman.docker")


def take_attach_socket(sdk_sock: SdkSocket) -> tuple[socket.socket, bytes]:
    """Turn the SDK's attach socket into a plain non-blocking socket the event loop owns.

    Runs in a worker thread. The SDK reads the HTTP upgrade response through a buffered file, which
    may already hold the first frames (an adopted container that is talking): those bytes are
    returned with the socket so nothing is lost. The socket is dup()ed so closing the SDK's
    response objects (which we must not keep alive) leaves our connection open.
    """
    raw = sdk_sock._sock if hasattr(sdk_sock, "_sock") else sdk_sock
    ours: socket.socket = raw.dup()
    # O_NONBLOCK is shared with the SDK's descriptor, so peeking at its buffer cannot block.
    ours.setblocking(False)
    leftover = b""
    response = sdk_sock._response if hasattr(sdk_sock, "_response") else None
    try:
        if response is not None:
            leftover = bytes(response.raw._fp.fp.peek())
    except Exception:  # noqa: BLE001 - an SDK without that buffer simply has nothing left over
        pass
    try:
        if response is not None:
            response.close()
        sdk_sock.close()
        raw.close()
    except OSError:
        pass
    return ours, leftover


class ConsoleDemux:
    """Split Docker's multiplexed attach stream (tty=False: 8-byte frame headers) into lines.

    stdout and stderr keep separate partial lines so interleaved writes do not mix.
    """

    def __init__(self, sink: ConsoleSink):
        self._buf = bytearray()
        self._streams = {1: LineSplitter(sink), 2: LineSplitter(sink)}

    def feed(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= 8:
            size = int.from_bytes(self._buf[4:8], "big")
            if len(self._buf) < 8 + size:
                return
            kind = self._buf[0]
            payload = bytes(self._buf[8 : 8 + size])
            del self._buf[: 8 + size]
            if kind in self._streams:
                self._streams[kind].feed(payload)

    def flush(self) -> None:
        for lines in self._streams.values():
            lines.flush()
