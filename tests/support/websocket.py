"""Helpers for the websocket tests (this module holds no tests): Panel-like tokens and a real
websocket client (the `websockets` package) that waits on frames, never on the clock."""

from __future__ import annotations

import asyncio
import json
import time
import uuid as uuidlib
import warnings
from contextlib import asynccontextmanager

import jwt
from jwt.warnings import InsecureKeyLengthWarning
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.daemon import TOKEN, DaemonProcess

FRAME_TIMEOUT = 60  # seconds a test waits for a frame it expects: waiting only, never a measure


def token(
    server: str,
    *,
    permissions=("*",),
    user: str | None = "8f3a0c2e-5b1d-4e6f-9a7b-0c1d2e3f4a5b",
    issued: float | None = None,
    expires_in: float = 600,
    jti: str | None = None,
    secret: str = TOKEN,
    **claims,
) -> str:
    """A websocket JWT shaped as the Panel makes it (HS256 with the node token)."""
    now = int(time.time()) if issued is None else int(issued)
    payload = {
        "iss": "https://panel.example.com",
        "aud": ["http://127.0.0.1"],
        "jti": jti or uuidlib.uuid4().hex,
        "iat": now,
        "nbf": now - 300,
        "exp": int(time.time() + expires_in),
        "server_uuid": server,
        "permissions": list(permissions),
    }
    if user is not None:
        payload["user_uuid"] = user
    payload.update(claims)
    with warnings.catch_warnings():  # the tests' node token is shorter than PyJWT recommends
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


def frame(event: str, *args: str) -> str:
    return json.dumps({"event": event, **({"args": list(args)} if args else {})})


class Socket:
    """One client connection; `frames` keeps everything received, in order."""

    def __init__(self, ws, server: str):
        self.ws = ws
        self.server = server
        self.frames: list[dict] = []
        self.permissions: list[str] = ["*"]  # those of the token it authenticated with (for quiet())

    async def send(self, event: str, *args: str) -> None:
        await self.ws.send(frame(event, *args))

    async def next(self, timeout: float = FRAME_TIMEOUT) -> dict:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        data = json.loads(raw)
        assert isinstance(data, dict) and isinstance(data.get("event"), str), raw
        if "args" in data:
            assert data["args"] and all(isinstance(a, str) for a in data["args"]), raw
        self.frames.append(data)
        return data

    async def until(self, event: str, *args: str, timeout: float = FRAME_TIMEOUT) -> list[dict]:
        """Frames up to and including the first `event` (with these args, when given)."""
        seen = []
        while True:
            f = await self.next(timeout)
            seen.append(f)
            if f["event"] == event and (not args or f.get("args") == list(args)):
                return seen

    async def auth(self, jwt_token: str) -> list[dict]:
        """Authenticate for the first time: auth success, status, stats."""
        await self.send("auth", jwt_token)
        self.permissions = jwt.decode(jwt_token, options={"verify_signature": False}).get("permissions", ["*"])
        got = [await self.next() for _ in range(3)]
        assert [f["event"] for f in got] == ["auth success", "status", "stats"], got
        return got

    async def quiet(self) -> list[dict]:
        """Every frame that arrives before the answer to a probe: a re-auth, which is answered
        `auth success` and nothing else (a `stats` could be a periodic one). A socket's frames
        are in order, so this proves what was (not) sent before it, without a sleep."""
        await self.send("auth", token(self.server, permissions=self.permissions))  # fresh, same permissions
        seen = await self.until("auth success")
        return seen[:-1]

    async def statuses(self, count: int) -> list[str]:
        states = []
        while len(states) < count:
            f = await self.next()
            if f["event"] == "status":
                states.append(f["args"][0])
        return states

    async def closed(self, timeout: float = FRAME_TIMEOUT) -> ConnectionClosed:
        """Read until the server closes the connection; returns how it closed."""
        try:
            while True:
                await self.next(timeout)
        except ConnectionClosed as exc:
            return exc


def ws_url(d: DaemonProcess, server: str) -> str:
    return f"ws://127.0.0.1:{d.port}/api/servers/{server}/ws"


@asynccontextmanager
async def socket(d: DaemonProcess, server: str, **kwargs):
    async with connect(ws_url(d, server), open_timeout=FRAME_TIMEOUT, **kwargs) as ws:
        yield Socket(ws, server)


@asynccontextmanager
async def authed(d: DaemonProcess, server: str, **token_claims):
    async with socket(d, server) as s:
        await s.auth(token(server, **token_claims))
        yield s
