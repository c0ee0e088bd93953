"""Console output of each server: a buffer of recent lines bounded in lines and in bytes, and its
live listeners.

Lines arrive already cut to a bounded length by the runtime (engine.console.lines); the
buffer then keeps at most `max_lines` lines and about `max_bytes` of text, dropping the oldest.
Listeners hear two kinds of line: `OUTPUT` (what the server printed, also kept in the buffer)
and `DAEMON` (the daemon's own notes about the server: pre-boot steps, a stop that timed out, a
crash and what is done about it), which Wings' websocket sends as `console output` prefixed
`[Pterodactyl Daemon]:` and which, as in Wings, are not part of the server's logs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import structlog

log = structlog.get_logger("wingman.console")

DEFAULT_LINES = 1000
DEFAULT_BYTES = 512 * 1024
OUTPUT, DAEMON = "output", "daemon"  # the kinds of console line listeners hear

Listener = Callable[[str, str], None]  # (kind, text)


class ConsoleBuffer:
    def __init__(self, max_lines: int = DEFAULT_LINES, max_bytes: int = DEFAULT_BYTES):
        self.lines: deque[str] = deque()
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.size = 0  # characters held: a bound on memory close enough to bytes for console text
        self._listeners: list[Listener] = []

    def push(self, line: str) -> None:
        """A line the server printed."""
        self.lines.append(line)
        self.size += len(line)
        while len(self.lines) > self.max_lines or (self.size > self.max_bytes and len(self.lines) > 1):
            self.size -= len(self.lines.popleft())
        self._tell(OUTPUT, line)

    def note(self, text: str) -> None:
        """A note of the daemon's about this server, for live listeners only."""
        self._tell(DAEMON, text)

    def _tell(self, kind: str, text: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, text)
            except Exception:
                log.exception("a console listener failed")

    def tail(self, n: int) -> list[str]:
        if n <= 0:
            return []
        if n >= len(self.lines):
            return list(self.lines)
        return [self.lines[i] for i in range(len(self.lines) - n, len(self.lines))]

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Hear every later line as `listener(kind, text)`; returns the way to stop listening."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None
