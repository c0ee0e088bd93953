"""A server's live feed for the CLI: the same Wings websocket the Panel's console reads
(`/api/servers/{uuid}/ws`, docs/websocket.md), opened with a JWT the CLI signs with the node token.

`ServerFeed` is a blocking client (websockets' sync API): `frames()` yields `(event, args)` in the
order the daemon sent them and re-authenticates by itself when the daemon says the token is
expiring; `send_command` writes one console line. `printable` makes a line the game server wrote
safe for a terminal (only colour sequences kept, and only when the output is one).
"""

from __future__ import annotations

import getpass
import json
import re
import time
import uuid as uuidlib
import warnings
from collections.abc import Iterator

import httpx
import jwt
from jwt.warnings import InsecureKeyLengthWarning
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import connect

from wingman.api.websocket.frames import DAEMON_NOTE_PREFIX, DAEMON_NOTE_SUFFIX

TOKEN_SECONDS = 900  # a token's life; the daemon says `token expiring` a minute before, and the feed signs a new one
OPEN_TIMEOUT = 15


class FeedError(Exception):
    """The feed could not be opened or was refused; the message says why, in one line."""


def address(client: httpx.Client) -> tuple[str, str]:
    """The daemon's URL and the node token of a `daemon_client` (so both come from one place)."""
    return str(client.base_url).rstrip("/"), client.headers.get("Authorization", "").removeprefix("Bearer ")


def socket_url(base: str, server: str) -> str:
    scheme, rest = base.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest.rstrip('/')}/api/servers/{server}/ws"


def sign(secret: str, server: str) -> str:
    """A websocket JWT as the Panel makes it (HS256 with the node token), every permission but admin's."""
    now = int(time.time())
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        user = "unknown"
    claims = {
        "server_uuid": server,
        "user_uuid": f"cli:{user}",
        "permissions": ["*"],
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_SECONDS,
        "jti": uuidlib.uuid4().hex,
    }
    with warnings.catch_warnings():  # a node token shorter than PyJWT recommends is still the node's
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm="HS256")


class ServerFeed:
    """One authenticated socket to a server's feed. `state` is the server's state as last told."""

    def __init__(self, base: str, secret: str, server: str):
        self.server = server
        self._secret = secret
        self.state: str | None = None
        try:
            self._ws = connect(socket_url(base, server), open_timeout=OPEN_TIMEOUT, max_size=None)
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise FeedError(
                f"the daemon refused the console socket ({status})" + (": no such server" if status == 404 else "")
            ) from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise FeedError(f"cannot reach the daemon's console socket at {socket_url(base, server)}: {exc}") from None
        self._pending: list[tuple[str, list[str]]] = []
        self._auth()

    def _send(self, event: str, *args: str) -> None:
        self._ws.send(json.dumps({"event": event, **({"args": list(args)} if args else {})}))

    def _recv(self) -> tuple[str, list[str]]:
        data = json.loads(self._ws.recv())
        return str(data.get("event")), [a if isinstance(a, str) else "" for a in (data.get("args") or [])]

    def _auth(self) -> None:
        """First authentication: `auth success`, then the state (and stats) the daemon sends."""
        self._send("auth", sign(self._secret, self.server))
        while self.state is None:
            try:
                event, args = self._recv()
            except ConnectionClosed as exc:
                raise FeedError(f"the daemon closed the console socket ({exc})") from None
            if event == "jwt error":
                raise FeedError(
                    f"the daemon refused the console token ({args[0] if args else ''}): "
                    "the console needs the node token"
                )
            if event == "status" and args:
                self.state = args[0]
            elif event != "auth success" and event != "stats":
                self._pending.append((event, args))

    def send(self, event: str, *args: str) -> None:
        self._send(event, *args)

    def send_command(self, line: str) -> None:
        self._send("send command", line)

    def frames(self) -> Iterator[tuple[str, list[str]]]:
        """Every frame from now on, in order, until the socket closes (ConnectionClosed). A
        `status` also updates `state`; token renewals are done here and not yielded."""
        while self._pending:
            yield self._pending.pop(0)
        while True:
            event, args = self._recv()
            if event in ("token expiring", "token expired"):
                self._send("auth", sign(self._secret, self.server))
                continue
            if event == "auth success":
                continue
            if event == "status" and args:
                self.state = args[0]
            yield event, args

    def close(self) -> None:
        try:
            self._ws.close()
        except Exception:  # noqa: BLE001 - closing a socket that may be broken already: nothing to tell the user
            pass

    def __enter__(self) -> ServerFeed:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SGR = re.compile(r"\x1b\[[0-9;]*m")
ANY_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x9b]")


def note_text(line: str) -> str | None:
    """The text of one of the daemon's notes (pre-boot steps, `stop timed out`, ...), or None when
    the line is the server's own."""
    if not line.startswith(DAEMON_NOTE_PREFIX):
        return None
    return line[len(DAEMON_NOTE_PREFIX) :].removesuffix(DAEMON_NOTE_SUFFIX)


def printable(line: str, colour: bool) -> str:
    """A console line safe to write to a terminal: colour sequences kept when `colour` (the output is
    a terminal), every other escape sequence and control character dropped (a game server's output
    must not move the cursor, retitle the window or clear the screen)."""
    kept: list[str] = []
    pos = 0
    for m in ANY_ESCAPE.finditer(line):
        kept.append(CONTROL.sub("", line[pos : m.start()]))
        if colour and SGR.fullmatch(m.group(0)):
            kept.append(m.group(0))
        pos = m.end()
    kept.append(CONTROL.sub("", line[pos:]))
    text = "".join(kept)
    return text + "\x1b[0m" if colour and "\x1b[" in text else text
