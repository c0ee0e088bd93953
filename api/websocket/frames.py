"""Websocket frames as Wings speaks them: JSON text `{"event": "...", "args": ["...", ...]}`.

`args` is left out when empty, and every arg is a string (the Panel's client spreads `args` into
its handlers); a structured payload, such as `stats`, travels as a JSON string in `args[0]`.
"""

from __future__ import annotations

import json

# What the client sends.
AUTH = "auth"
SET_STATE = "set state"
SEND_LOGS = "send logs"
SEND_STATS = "send stats"
SEND_COMMAND = "send command"

# What the daemon sends.
AUTH_SUCCESS = "auth success"
TOKEN_EXPIRING = "token expiring"
TOKEN_EXPIRED = "token expired"
JWT_ERROR = "jwt error"
DAEMON_ERROR = "daemon error"
STATUS = "status"
STATS = "stats"
CONSOLE_OUTPUT = "console output"
DAEMON_MESSAGE = "daemon message"  # Wings: installs and restores; wingman's notes go as console output (daemon_note)
THROTTLED = "throttled"
# An install's own (engine.install.feed names them as Wings does): `install started` and `install
# completed` carry one empty arg, `install output` a line the script printed.
INSTALL_STARTED = "install started"
INSTALL_OUTPUT = "install output"
INSTALL_COMPLETED = "install completed"


# How Wings writes its own notes into a server's console (server/console.go: "[yellow][bold][%s
# Daemon]:[default] %s" through colorstring, which resets at the end), with Wings' default app name.
# They travel as `console output`, so the Panel's console shows them among the server's lines.
DAEMON_NOTE_PREFIX = "\x1b[33m\x1b[1m[Pterodactyl Daemon]:\x1b[39m "
DAEMON_NOTE_SUFFIX = "\x1b[0m"


def daemon_note(text: str) -> str:
    """A `console output` frame carrying a note of the daemon's, as Wings words it."""
    return encode(CONSOLE_OUTPUT, f"{DAEMON_NOTE_PREFIX}{text}{DAEMON_NOTE_SUFFIX}")


class BadFrame(ValueError):
    """A message that is not a frame; the text says what is wrong with it."""


def encode(event: str, *args: str) -> str:
    frame: dict = {"event": event}
    if args:
        frame["args"] = [str(a) for a in args]
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def encode_json(event: str, payload) -> str:
    """A frame whose one arg is a JSON document (Wings' `stats`)."""
    return encode(event, json.dumps(payload, separators=(",", ":")))


class SharedFrame:
    """The frame of the last object it was asked about. One state change, console line or stats
    document goes to every socket of a server: it is encoded once, not once per socket (the
    same object is handed to each socket in turn)."""

    def __init__(self, make):
        self._make = make
        self._last: tuple[object, str] | None = None

    def __call__(self, source) -> str:
        last = self._last
        if last is not None and last[0] is source:
            return last[1]
        frame = self._make(source)
        self._last = (source, frame)
        return frame


def decode(message: str | bytes) -> tuple[str, list[str]]:
    """(event, args) of a client's frame; BadFrame when it is not one.

    Read as Wings reads it (goccy/go-json into `{Event string; Args []string}`), so that what the
    Panel sends is taken: a `null` where a string goes is `""` (the Panel's client sends
    `"args":[null]` for `send logs` and `send stats`); `args` may be absent or `null`; keys match
    whatever their case, the last of the same key wins, other keys are ignored; a binary message
    is read as JSON text too. What Wings' decoder refuses is refused here: anything but a string
    or `null` in `args` (a number, a boolean, an object, a list), `args` that is not a list, an
    `event` that is not a string, a message that is not a JSON object. Wings drops such a message
    without a word; wingman answers it with a `daemon error` that says what is wrong.
    """
    if isinstance(message, (bytes, bytearray, memoryview)):
        try:
            message = bytes(message).decode("utf-8")
        except UnicodeDecodeError:
            raise BadFrame("the message is not valid JSON (nor UTF-8 text)") from None
    try:
        frame = json.loads(message, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise BadFrame("the message is not valid JSON") from None
    if frame is None:  # Go decodes `null` into a struct as no change: an empty frame
        return "", []
    if not isinstance(frame, _Pairs):
        raise BadFrame('a frame is a JSON object: {"event": "...", "args": ["...", ...]}')
    event, args = None, None
    for key, value in frame:  # in order: the last of a key wins, as in Go
        if key.lower() == "event":
            event = value
        elif key.lower() == "args":
            args = value
    if event is not None and not isinstance(event, str):
        raise BadFrame(f'"event" must be a string, not {_kind(event)}')
    if args is not None and not isinstance(args, list):
        raise BadFrame(f'"args" must be a list of strings, not {_kind(args)}')
    for arg in args or ():
        if arg is not None and not isinstance(arg, str):
            raise BadFrame(f'"args" must be a list of strings (or nulls), and it holds {_kind(arg)}')
    return event or "", ["" if a is None else a for a in args or ()]


class _Pairs(list):
    """A JSON object as its (key, value) pairs, in order (duplicates and all)."""


def _pairs(pairs: list) -> _Pairs:
    return _Pairs(pairs)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # Python's reader takes NaN and Infinity; Go's does not


def _kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, _Pairs):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a string"
