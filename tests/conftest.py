"""Fixtures: a real daemon subprocess over a real socket, and an in-process engine on a real
SQLite file. Docker fixtures live in tests/support/docker_engine.py."""

from __future__ import annotations

import asyncio
import inspect
import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from tests.support.daemon import TERMINAL, TOKEN, daemon_factory, kill_leftovers
from tests.support.full_disk import tmpfs
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.events import Metadata

pytest_plugins = [
    "tests.support.postgres",
    "tests.support.docker_engine",
    "tests.support.http",
    "tests.support.served_daemon",
]

TEST_META = Metadata(actor="test", channel="test", cause="operator")

# .ci/test.sh runs the same generated examples every time, so a red build can be reproduced;
# a plain `pytest` varies them, to keep finding new cases.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs for a test (a store whose disk fills up); needs root."""
    with tmpfs(tmp_path / "tiny") as mount_point:
        yield mount_point


@pytest.fixture
def daemon_process(tmp_path):
    """A factory: `daemon_process(servers=[...])` starts `wingman serve` and stops it afterwards."""
    yield from daemon_factory(lambda n: tmp_path / f"daemon{n}")


class EngineHarness:
    """An in-process Daemon (no HTTP) for engine-level tests with real processes."""

    def __init__(self, folder: Path, servers: list[dict], database_url: str | None = None, system: dict | None = None):
        self.folder = folder
        self.config = parse_config(
            {
                "token": TOKEN,
                "system": {"root_directory": str(folder / "var"), **(system or {})},
                "database": {"url": database_url},
                "servers": servers,
            }
        )
        self.daemon = Daemon(self.config)

    async def __aenter__(self) -> EngineHarness:
        await self.daemon.start()
        await asyncio.wait_for(self.daemon.recovery.done.wait(), 120)  # boot recovery runs in the background
        return self

    async def __aexit__(self, *exc) -> None:
        await self.daemon.stop()

    @property
    def power(self):
        return self.daemon.power

    @property
    def processes(self):
        return self.daemon.processes

    def state(self, uuid: str) -> str:
        return self.daemon.registry.get(uuid).state

    async def act(self, uuid: str, action: str, wait: int | None = None):
        return await self.daemon.power.request(uuid, action, wait, TEST_META)

    async def outcome(self, op, timeout: float = 60):
        """The operation, once its outcome is durable (the registry updates the object in place)."""
        try:
            await asyncio.wait_for(self.daemon.power.settled(op.id), timeout)
        except TimeoutError:
            raise AssertionError(f"never happened within {timeout} s: {op.action} {op.id} settled; {op}") from None
        assert op.status in TERMINAL, f"{op.action} {op.id} settled without an outcome: {op}"
        return op

    async def wait_state(self, uuid: str, state: str, timeout: float = 60) -> None:
        await self.after_commits(lambda: self.state(uuid) == state, timeout, f"server {uuid} to be {state}")

    async def events(self, uuid: str):
        return await self.daemon.store.read_stream(uuid)

    async def types(self, uuid: str) -> list[str]:
        return [e.type for e in await self.events(uuid)]

    async def until_event(self, uuid: str, predicate, timeout: float = 60):
        """The first event of the server's stream that `predicate` accepts, once there is one."""

        async def found():
            return next((ev for ev in await self.events(uuid) if predicate(ev)), None)

        return await self.after_commits(found, timeout, f"an event of server {uuid} that {predicate} accepts")

    async def after_commits(self, fact, timeout: float, what: str):
        """`fact()`'s first truthy value (awaited if it gives an awaitable), asked now and after
        each commit to the store: what the tests wait for here follows from what is written."""
        committed = asyncio.Event()
        unsubscribe = self.daemon.store.subscribe(lambda events: committed.set())
        value = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    committed.clear()  # before asking: a commit while `fact` reads is not missed
                    value = fact()
                    if inspect.isawaitable(value):
                        value = await value
                    if value:
                        return value
                    await committed.wait()
        except TimeoutError:
            raise AssertionError(f"never happened within {timeout} s: {what}; last value seen: {value!r}") from None
        finally:
            unsubscribe()


@pytest.fixture
async def engine_harness(tmp_path):
    """A factory: `async with engine_harness([definition(...)]) as h:`."""

    def make(servers: list[dict], database_url: str | None = None, system: dict | None = None) -> EngineHarness:
        return EngineHarness(tmp_path, servers, database_url, system)

    yield make
    kill_leftovers(tmp_path)
