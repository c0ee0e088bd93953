"""For tests of the Docker runtime by itself (no power engine): a console sink to await lines
on, and the launch spec of a server definition."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wingman.engine.environments.base import LaunchSpec
from wingman.engine.servers.definition import parse_definition

WAIT = 60  # seconds: the longest any single step may take before the test fails


class Console:
    """A console sink that can be awaited for a line."""

    def __init__(self):
        self.lines: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()

    async def wait_for(self, text: str, timeout: float = WAIT) -> None:
        async def seen():
            while not any(text in line for line in self.lines):
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise AssertionError(f"{text!r} not seen on the console within {timeout}s: {self.lines}") from None


def spec_for(tmp_path: Path, uuid: str, invocation: str, image: str, **build) -> LaunchSpec:
    config = parse_definition(
        {
            "settings": {
                "uuid": uuid,
                "invocation": invocation,
                "runtime": "docker",
                "container": {"image": image},
                "environment": {"MOTD": "hello"},
                "build": build,
            }
        }
    )
    folder = tmp_path / uuid
    folder.mkdir(parents=True, exist_ok=True)
    return LaunchSpec(config=config, folder=folder, environment=dict(config.environment))
