"""Shared by the Docker power tests: the shell scripts PID 1 runs in each container, server
definitions for them, small waits on the engine harness and the real Docker engine, and an engine
harness whose node has a `docker:` section."""

from __future__ import annotations

import asyncio

import docker

from tests.conftest import EngineHarness
from tests.support.daemon import TOKEN, definition
from tests.support.docker_engine import inspect_server_container
from tests.support.waiting import eventually_async
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.environments.docker.spec import container_name

WAIT = 60  # seconds: the longest any single step may take before the test fails

# PID 1 of each container is busybox sh running one of these.
TRAP = (
    "trap 'echo got TERM; exit 0' TERM; trap 'echo got INT; exit 0' INT; echo ready; "
    "while true; do sleep 1 & wait $!; done"
)
ECHO = 'echo ready; while read line; do [ "$line" = stop ] && { echo bye; exit 0; }; echo "echo $line"; done'
# Sees TERM (the trap proves it was delivered) and carries on: only SIGKILL ends it.
STUBBORN = "trap 'echo ignoring TERM' TERM; echo ready; while true; do sleep 1 & wait $!; done"


def docker_server(uuid: str, image: str, invocation: str, *, done=("ready",), **settings) -> dict:
    return definition(uuid, invocation=invocation, done=done, runtime="docker", container={"image": image}, **settings)


def sdk(url: str) -> docker.APIClient:
    return docker.APIClient(base_url=url, version="auto", timeout=60)


async def inspect(url: str, uuid: str) -> dict | None:
    """The server's container as the engine sees it, or None when there is none."""
    return await asyncio.to_thread(inspect_server_container, url, uuid)


async def not_running(url: str, uuid: str) -> bool:
    found = await inspect(url, uuid)
    return found is None or not found["State"]["Running"]


async def console_shows(h, uuid: str, text: str, timeout: float = WAIT) -> None:
    lines = h.processes.console(uuid).lines
    await eventually_async(
        lambda: any(text in line for line in lines), timeout, lambda: f"{text!r} on the console: {list(lines)}"
    )


async def of_type(h, uuid: str, kind: str) -> list:
    return [e for e in await h.events(uuid) if e.type == kind]


async def started_running(h, uuid: str):
    op = await h.outcome(await h.act(uuid, "start"), WAIT)
    assert op.status == "succeeded", op.reason
    assert h.state(uuid) == "running"
    return op


def remove_server_container(url: str, uuid: str) -> None:
    """Remove the server's container now (the image it uses is removed next)."""
    client = sdk(url)
    try:
        client.remove_container(container_name(uuid), force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: the daemon is removing it already (a start clears the old one)
            raise
    finally:
        client.close()


class DockerHarness(EngineHarness):
    """The engine harness with the node's `docker:` section given (the fixture's has none)."""

    def __init__(self, folder, servers: list[dict], docker_section: dict, system: dict | None = None):
        self.folder = folder
        self.config = parse_config(
            {
                "token": TOKEN,
                "system": {"root_directory": str(folder / "var"), **(system or {})},
                "docker": docker_section,
                "servers": servers,
            }
        )
        self.daemon = Daemon(self.config)
