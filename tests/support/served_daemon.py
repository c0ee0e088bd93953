"""A daemon and its Sanic app served on a real socket inside the test's own event loop.

For tests that must reach into the engine (hold a step back, count calls) while a real HTTP
client talks to the daemon over a socket, as a Panel would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import TOKEN, free_port, kill_leftovers
from wingman.api.app import PROTOCOL, create_app
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon

_apps = 0


class ServedDaemon:
    def __init__(self, folder: Path, servers: list[dict], system: dict | None = None):
        global _apps
        _apps += 1
        self.config = parse_config(
            {"token": TOKEN, "system": {"root_directory": str(folder / "var"), **(system or {})}, "servers": servers}
        )
        self.daemon = Daemon(self.config)  # built first, so a test can change it before it starts
        self.app = create_app(self.config, name=f"served{_apps}", daemon=self.daemon)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None
        self._task: asyncio.Task | None = None

    async def start(self) -> ServedDaemon:
        self._server = await self.app.create_server(
            host="127.0.0.1", port=self.port, return_asyncio_server=True, protocol=PROTOCOL
        )
        await self._server.startup()
        await self._server.before_start()  # starts the daemon (api.app's listener)
        await self._server.after_start()
        self._task = asyncio.create_task(self._server.serve_forever())
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        await self._server.before_stop()
        await self._server.close()
        await self._server.after_stop()  # stops the daemon
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._server = None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    async def outcome(self, operation_id: str, timeout: float = 60) -> dict:
        """`GET /api/operations/{id}`, once the operation's outcome is durable (power.settled)."""
        try:
            await asyncio.wait_for(self.daemon.power.settled(operation_id), timeout)
        except TimeoutError:
            raise AssertionError(f"never happened within {timeout} s: operation {operation_id} settled") from None
        async with self.client() as c:
            return (await c.get(f"/api/operations/{operation_id}")).json()


@pytest.fixture
async def served_daemon(tmp_path):
    """A factory: `d = served_daemon([definition()], system={...})`, then `await d.start()`."""
    made: list[ServedDaemon] = []

    def make(servers: list[dict], system: dict | None = None) -> ServedDaemon:
        d = ServedDaemon(tmp_path, servers, system)
        made.append(d)
        return d

    yield make
    for d in made:
        await d.stop()
    kill_leftovers(tmp_path)
