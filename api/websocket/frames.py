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
DAEMON_MESSAGE = "daemon message"
THROTTLED = "throttled"


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
    """(event, args) of a client's frame; BadFrame when it is not one."""
    if not isinstance(message, str):
        raise BadFrame("frames are JSON text; a binary message was sent")
    try:
        frame = json.loads(message)
    except (ValueError, RecursionError):
        raise BadFrame("the message is not valid JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("event"), str) or not frame["event"]:
        raise BadFrame('a frame is a JSON object with an "event" string')
    args = frame.get("args", [])
    if args is None:
        args = []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise BadFrame('"args" must be a list of strings')
    return frame["event"], args
