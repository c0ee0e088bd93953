"""Pytest fixtures for tests against a real Docker engine (a plugin: `pytest_plugins =
["tests.support.docker_engine"]` in tests/conftest.py).

- `docker_engine` (session): the engine's URL. When the engine does not answer, runs
  `.ci/docker.sh` to install/start it and build the test image, so a developer can run the tests
  directly. Under CI (`CI=true`) an engine that cannot be brought up FAILS the test loudly;
  locally the test is skipped with the reason.
- `docker_image`: the test image as a server definition names it (`~local/busybox:test`: a static
  busybox, local-only, never pulled); `docker_base_image` the same by the engine's name.
- `docker_uuids`: fresh server uuids; every container labelled `wingman.server=<uuid>` for a uuid
  it handed out is removed after the test, pass or fail. It removes only those: other suites may
  share the engine at the same time.
- `docker_runtime`: a factory of opened `DockerRuntime`s, closed after the test.

Mark tests that need the engine with `@pytest.mark.docker`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import uuid as uuidlib
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_IMAGE = os.environ.get("WINGMAN_TEST_IMAGE", "local/busybox:test")
LABEL = "wingman.server"


def engine_url() -> str:
    # docker 7.2 follows the CLI context unless DOCKER_HOST is set: name the socket explicitly.
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _engine_ready(url: str) -> str | None:
    """None when the engine answers and has the test image, else what is missing."""
    try:
        client = docker.APIClient(base_url=url, version="auto", timeout=10)
    except docker.errors.DockerException as exc:
        return f"the Docker engine at {url} does not answer ({exc})"
    try:
        client.inspect_image(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        return f"the test image {TEST_IMAGE} is missing"
    except Exception as exc:  # noqa: BLE001 - any other failure: the engine cannot be used either
        return f"the Docker engine at {url} does not answer ({exc})"
    finally:
        client.close()
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"Docker tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(f"no Docker engine: {reason}")


@pytest.fixture(scope="session")
def docker_engine() -> str:
    url = engine_url()
    missing = _engine_ready(url)
    if missing is None:
        return url
    script = REPO / ".ci" / "docker.sh"
    try:
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"{missing}; running {script} failed: {exc}")
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        _unavailable(f"{missing}; {script} exited with {done.returncode}:\n{tail}")
    missing = _engine_ready(url)
    if missing is not None:
        _unavailable(f"{missing} even after {script} ran")
    return url


@pytest.fixture(scope="session")
def docker_image(docker_engine) -> str:
    """The test image as a server definition names it: `~` (Wings' local-only mark), so no start
    tries a registry first (this machine's resolver sometimes takes 5 s to say docker.io does not
    exist). A Dockerfile's FROM or a tag needs the engine's name: `docker_base_image`."""
    return "~" + TEST_IMAGE


@pytest.fixture(scope="session")
def docker_base_image(docker_engine) -> str:
    """The test image by the engine's own name (a FROM line, a tag, an inspect)."""
    return TEST_IMAGE


class ServerUuids:
    """Hands out server uuids and remembers them, so teardown removes exactly their containers."""

    def __init__(self):
        self.issued: list[str] = []

    def new(self) -> str:
        uuid = str(uuidlib.uuid4())
        self.issued.append(uuid)
        return uuid

    def track(self, uuid: str) -> str:
        self.issued.append(uuid)
        return uuid


@pytest.fixture
def docker_uuids(docker_engine):
    uuids = ServerUuids()
    yield uuids
    if not uuids.issued:
        return
    client = docker.APIClient(base_url=docker_engine, version="auto", timeout=60)
    try:
        wanted = set(uuids.issued)
        for summary in client.containers(all=True, filters={"label": LABEL}):
            if (summary.get("Labels") or {}).get(LABEL) in wanted:
                try:
                    client.remove_container(summary["Id"], force=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:  # 409: the daemon is removing it already (a start clears the old one)
                        raise
    finally:
        client.close()


@pytest.fixture
async def docker_runtime(docker_engine):
    """`rt = await docker_runtime(max_workers=4)`: an opened DockerRuntime, closed afterwards."""
    from wingman.engine.environments.docker.runtime import DockerRuntime

    opened: list[DockerRuntime] = []

    async def make(**kwargs) -> DockerRuntime:
        kwargs.setdefault("base_url", docker_engine)
        rt = DockerRuntime(**kwargs)
        await rt.open()
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        await rt.close()


class SocketProxy:
    """A unix socket that forwards to the engine's socket and can be cut and restored: the engine
    'disappearing' for this runtime only, without disturbing anyone else using the engine."""

    def __init__(self, target: str):
        self.target = target
        self.dir = tempfile.mkdtemp(prefix="wm-")  # short: unix socket paths are limited
        self.path = f"{self.dir}/docker.sock"
        self._server = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path)

    async def down(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        Path(self.path).unlink(missing_ok=True)

    async def _serve(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


def inspect_server_container(url: str, uuid: str) -> dict | None:
    """The server's container as the engine sees it (blocking), or None when there is none."""
    from wingman.engine.environments.docker.spec import container_name

    client = docker.APIClient(base_url=url, version="auto", timeout=60)
    try:
        return client.inspect_container(container_name(uuid))
    except docker.errors.NotFound:
        return None
    finally:
        client.close()
