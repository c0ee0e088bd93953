"""A real image registry for the pull tests (this module holds no tests): Debian's
`docker-registry` (the CNCF distribution registry) on 127.0.0.1 and a free port, its config and
storage in a folder of the test's, open or behind htpasswd credentials. Docker pushes to and
pulls from 127.0.0.0/8 registries without TLS. .ci/system.sh installs `docker-registry` and
`htpasswd` (apache2-utils); without them a test is skipped locally and fails under CI.

Images pushed to it are built by `push_unique_image`: the test image plus one layer of random
bytes, so that a pull has a layer to download (the test image's own layer is always local)."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import uuid as uuidlib
from pathlib import Path

import docker
import httpx
import yaml

from tests.support.daemon import free_port, unavailable
from tests.support.waiting import eventually

START_WITHIN = 30  # seconds the registry may take to answer; waiting only, never a measure


class Registry:
    """One `docker-registry serve` process; `start()` returns once it answers on /v2/."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None):
        self.folder = folder
        self.users = users or {}
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def auth_config(self) -> dict | None:
        """Credentials for the SDK's push, when the registry wants them (the first user)."""
        for user, password in self.users.items():
            return {"username": user, "password": password}
        return None

    def _config(self) -> dict:
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.folder / "data")}},
            "http": {"addr": self.host},
        }
        if self.users:
            lines = []
            for user, password in self.users.items():  # bcrypt: the only scheme the registry takes
                done = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True)
                lines.append(done.stdout.strip())
            (self.folder / "htpasswd").write_text("\n".join(lines) + "\n")
            config["auth"] = {"htpasswd": {"realm": "wingman-tests", "path": str(self.folder / "htpasswd")}}
        return config

    def start(self) -> Registry:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "config.yml"
        config.write_text(yaml.safe_dump(self._config()))
        self.log = open(self.folder / "registry.log", "ab")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

        def answering() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}: {self.read_log()[-3000:]}")
            httpx.get(f"http://{self.host}/v2/", timeout=1)  # any answer will do: open 200, behind htpasswd 401
            return True

        eventually(
            answering,
            START_WITHIN,
            lambda: f"docker-registry to answer: {self.read_log()[-3000:]}",
            ignoring=(httpx.HTTPError,),
        )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def answers(self) -> bool:
        try:
            httpx.get(f"http://{self.host}/v2/", timeout=1)
            return True
        except httpx.HTTPError:
            return False

    def read_log(self) -> str:
        path = self.folder / "registry.log"
        return path.read_text(errors="replace") if path.exists() else ""


def registry_tools_missing() -> str | None:
    for tool, package in (("docker-registry", "docker-registry"), ("htpasswd", "apache2-utils")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (bash .ci/system.sh installs {package})"
    return None


def registries(make_folder):
    """A generator for fixtures: yields `start(users=None)`, a started Registry; stops them all
    afterwards. Missing tools skip the test (fail it under CI)."""
    missing = registry_tools_missing()
    if missing is not None:
        unavailable(missing)
    started: list[Registry] = []

    def start(users: dict[str, str] | None = None) -> Registry:
        registry = Registry(make_folder(len(started)), users)
        started.append(registry)
        return registry.start()

    yield start
    for registry in started:
        registry.stop()


class PushedImages:
    """Images a test pushed, removed from the engine afterwards (tags and their layers)."""

    def __init__(self, api: docker.APIClient, base: str):
        self.api = api
        self.base = base  # what every pushed image is built from (the test image)
        self.names: list[str] = []
        self.ids: set[str] = set()

    def push(self, registry: Registry, repository: str, size: int = 1 << 20) -> str:
        """Build `base` plus a layer of `size` random bytes, push it to `registry` under
        `repository` (a unique tag), and remove it here: the next start must pull it."""
        name = f"{registry.host}/{repository}:{uuidlib.uuid4().hex[:12]}"
        self.names.append(name)
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            for member, data in (
                ("Dockerfile", f"FROM {self.base}\nCOPY marker /marker\n".encode()),
                ("marker", os.urandom(size)),
            ):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        context.seek(0)
        for line in self.api.build(fileobj=context, custom_context=True, tag=name, rm=True, decode=True):
            if "error" in line:
                raise RuntimeError(f"building {name}: {line['error']}")
        self.ids.add(self.api.inspect_image(name)["Id"])  # the same once pulled: content-addressed
        for line in self.api.push(name, stream=True, decode=True, auth_config=registry.auth_config):
            if "error" in line:
                raise RuntimeError(f"pushing {name}: {line['error']}")
        self.remove(name)
        return name

    def present(self, name: str) -> bool:
        try:
            self.api.inspect_image(name)
            return True
        except docker.errors.ImageNotFound:
            return False

    def remove(self, name: str) -> None:
        try:
            self.api.remove_image(name, force=True)  # force: a stopped server container may use it
        except docker.errors.ImageNotFound:
            pass

    def clean(self) -> None:
        """Remove every image pushed, and the containers made from them (the servers' own:
        no one else has these images), so no untagged layers are left behind."""
        for image_id in self.ids:
            for container in self.api.containers(all=True, filters={"ancestor": image_id}):
                try:
                    self.api.remove_container(container["Id"], force=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:  # 409: the daemon is removing it already
                        raise
            try:
                self.api.remove_image(image_id, force=True)
            except docker.errors.ImageNotFound:
                pass


class SilentRegistry:
    """A TCP listener that accepts and never answers: a registry that hangs."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


class SlowProxy:
    """A registry's address that answers slowly: the engine's connections are forwarded to
    `target`, and what comes back trickles at `rate` bytes a second per connection (small
    answers, manifests, pass at once; a layer of megabytes takes minutes). Runs on the test's
    event loop; `closed` counts the engine's connections that went away."""

    def __init__(self, target: str, rate: int = 64 << 10):
        self.target_host, self.target_port = target.rsplit(":", 1)
        self.rate = rate
        self.closed = 0
        self._server = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> SlowProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.host = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def close(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.target_host, int(self.target_port))
        self._writers |= {writer, up_writer}

        async def pipe(src, dst, slow: bool):
            try:
                while data := await src.read(self.rate // 8 if slow else 65536):
                    dst.write(data)
                    await dst.drain()
                    if slow and len(data) == self.rate // 8:
                        await asyncio.sleep(1 / 8)  # deliberate: the pacing that makes `rate` bytes a second
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))
        self._writers -= {writer, up_writer}
        self.closed += 1
