"""How a runtime turns a server's output into console lines, with its memory bounded whatever the
server prints. The output is untrusted: a server may print 250 MB without a newline, or print as
fast as the pipe allows.

- `LineSplitter` cuts lines on bytes (so a multi-byte character is never split by a cut at a
  newline), keeps at most `max_line` bytes of one line and marks a cut line, dropping the rest of
  it up to the next newline, as Wings does at 64 KiB.
- `OutputThrottle` is a token bucket in bytes per second: a runtime that reads faster than that
  waits before it reads again, so a flooding server is slowed by its own full pipe instead of
  keeping the daemon's loop busy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_LINE = 16 * 1024  # bytes of one console line kept; the rest of a longer line is dropped
CUT_MARKER = " [… line cut: longer than {limit} bytes]"
OUTPUT_RATE = 4 * 1024 * 1024  # bytes per second read from one server, sustained
OUTPUT_BURST = 1024 * 1024  # bytes it may print at once before the rate applies


class LineSplitter:
    """Bytes in, lines (str, no line terminator) out to `sink`."""

    def __init__(self, sink: Callable[[str], None], max_line: int = MAX_LINE):
        self._sink = sink
        self._max = max_line
        self._partial = bytearray()
        self._cutting = False  # dropping the rest of a line that was already cut

    def feed(self, data: bytes) -> None:
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline
            if not self._cutting:
                room = self._max - len(self._partial)
                self._partial += data[start : min(end, start + room)]
                if end - start > room:
                    self._emit(bytes(self._partial), cut=True)
                    self._partial.clear()
                    self._cutting = True
            if newline < 0:
                return
            if self._cutting:
                self._cutting = False
            else:
                self._emit(bytes(self._partial), cut=False)
                self._partial.clear()
            start = newline + 1

    def flush(self) -> None:
        """The last line, when the output ended without a newline."""
        if self._partial and not self._cutting:
            self._emit(bytes(self._partial), cut=False)
        self._partial.clear()
        self._cutting = False

    def drop_partial(self) -> None:
        """Forget the line in progress (the output before it was skipped)."""
        self._partial.clear()
        self._cutting = False

    def _emit(self, raw: bytes, cut: bool) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if cut:
            line += CUT_MARKER.format(limit=self._max)
        try:
            self._sink(line)
        except Exception:  # noqa: BLE001 - a failing sink must not stop the console of a running server
            pass


class OutputThrottle:
    """How long to wait before reading more of one server's output (0 while under the rate)."""

    def __init__(
        self, rate: float = OUTPUT_RATE, burst: float = OUTPUT_BURST, clock: Callable[[], float] = time.monotonic
    ):
        self._rate, self._burst, self._clock = rate, burst, clock
        self._tokens = burst
        self._at = clock()

    def delay_after(self, nbytes: int) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate) - nbytes
        self._at = now
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate
