"""When a starting server is ready: the done-lines of its egg (Wings' `startup.done`) matched
against each console line it prints.
"""

from __future__ import annotations

import re

from wingman.engine.servers.patterns import REGEX_PREFIX, Regex, compile_pattern

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # no nested repetition: linear on any input


class DoneMatcher:
    """Wings' startup `done` lines: plain substrings, or RE2 expressions behind `regex:`.

    RE2 runs in time linear in the line, which the runtime has already cut to a bounded length, so
    no pattern and no output can stall the daemon while a server starts."""

    def __init__(self, patterns: tuple[str, ...] | list[str], strip_ansi: bool = False):
        self.strip_ansi = strip_ansi
        self._subs: list[str] = []
        self._regexes: list[Regex] = []
        for p in patterns:
            if p.startswith(REGEX_PREFIX):
                self._regexes.append(compile_pattern(p[len(REGEX_PREFIX) :]))
            elif p:
                self._subs.append(p)

    @property
    def empty(self) -> bool:
        return not self._subs and not self._regexes

    def matches(self, line: str) -> bool:
        if self.strip_ansi:
            line = ANSI.sub("", line)
        return any(s in line for s in self._subs) or any(r.search(line) for r in self._regexes)
