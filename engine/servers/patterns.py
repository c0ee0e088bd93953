"""Text that a server definition hands the daemon to match or to write: done-line patterns,
configuration-file regexes and console commands.

Definitions come from server owners and Panels, and the lines they are matched against come from
the game server: both are untrusted. Regular expressions therefore use RE2 (`google-re2`), which
matches in time linear in the input and cannot be made to backtrack, and whose syntax is Go's
`regexp`, the one Wings uses for the same fields. A pattern RE2 cannot compile (backreferences,
lookarounds, a stray parenthesis) is refused when the definition is accepted, not at boot.
"""

from __future__ import annotations

from typing import Protocol

import re2

REGEX_PREFIX = "regex:"
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors go to the caller, not to the daemon's stderr


class BadPattern(ValueError):
    """A regular expression RE2 cannot compile; the message says why."""


class Regex(Protocol):
    """What the daemon uses of a compiled RE2 regex (google-re2 ships no type information)."""

    def search(self, text: str) -> object | None: ...

    def sub(self, template: str, text: str) -> str: ...


def compile_pattern(pattern: str) -> Regex:
    """An RE2 regex; BadPattern when it does not compile."""
    try:
        regex: Regex = re2.compile(pattern, _OPTIONS)
        return regex
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise BadPattern(f"regex {pattern!r} is not valid: {detail}") from None


def check_done_pattern(pattern: str) -> None:
    """A startup done-line: a plain substring, or `regex:` and an RE2 expression."""
    if pattern.startswith(REGEX_PREFIX):
        compile_pattern(pattern[len(REGEX_PREFIX) :])


def console_line_problem(text: str) -> str | None:
    """Why `text` cannot be written to a console as one command (None when it can): a command is
    one line of UTF-8 text, without line breaks, NUL or other control characters (tab aside)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid text (a lone surrogate)"
    for ch in text:
        if ch in "\r\n":
            return "it holds a line break; send each line as its own command"
        if ch != "\t" and (ord(ch) < 0x20 or ord(ch) == 0x7F):
            return f"it holds the control character U+{ord(ch):04X}"
    return None
