"""Console output of each server: a bounded buffer of recent lines plus live listeners, and the
done-line matcher that decides when a starting server is ready."""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
DEFAULT_LINES = 1000


class ConsoleBuffer:
    def __init__(self, max_lines: int = DEFAULT_LINES):
        self.lines: deque[str] = deque(maxlen=max_lines)
        self._listeners: list[Callable[[str], None]] = []

    def push(self, line: str) -> None:
        self.lines.append(line)
        for listener in list(self._listeners):
            listener(line)

    def tail(self, n: int) -> list[str]:
        return list(self.lines)[-n:] if n > 0 else []

    def listen(self, listener: Callable[[str], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)


class DoneMatcher:
    """Wings' startup `done` lines: plain substrings, or regular expressions behind `regex:`."""

    def __init__(self, patterns: tuple[str, ...] | list[str], strip_ansi: bool = False):
        self.strip_ansi = strip_ansi
        self._subs: list[str] = []
        self._regexes: list[re.Pattern] = []
        for p in patterns:
            if p.startswith("regex:"):
                self._regexes.append(re.compile(p[len("regex:"):]))
            elif p:
                self._subs.append(p)

    @property
    def empty(self) -> bool:
        return not self._subs and not self._regexes

    def matches(self, line: str) -> bool:
        if self.strip_ansi:
            line = ANSI.sub("", line)
        return any(s in line for s in self._subs) or any(r.search(line) for r in self._regexes)
