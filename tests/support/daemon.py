"""Helpers the tests share: free ports, server definitions, a real daemon in a subprocess."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid as uuidlib
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]


def _shared_folder() -> Path:
    """A folder every user can traverse, for what game servers (each its own unprivileged user)
    must read: the checkout and pytest's tmp_path may sit under 0700 folders (/root, /tmp/pytest-of-root)."""
    folder = Path(tempfile.mkdtemp(prefix="wingman-tests-"))
    folder.chmod(0o711)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


SHARED = _shared_folder()


def shared_file(name: str, text: str) -> Path:
    """`text` in a file any game server can read (a script for it to run)."""
    path = SHARED / name
    path.write_text(text)
    path.chmod(0o644)
    return path


GAMESERVER = shared_file("gameserver.py", (REPO / "engine" / "demo" / "gameserver.py").read_text())
# The Python a game server runs with: the system's, which every user may run (the venv's python
# lives under a private home).
SERVER_PYTHON = next(
    (p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)), sys.executable
)
TOKEN = "test-node-token-0123456789"
AUDIT_TOKEN = "test-audit-token-0123456789"
TERMINAL = {"succeeded", "failed", "rejected", "cancelled", "interrupted"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NO_RESTART = {"policy": "no"}  # definition()'s default, copied into each definition


def definition(
    uuid: str | None = None,
    *,
    invocation: str | None = None,
    done=("Server started",),
    stop: dict | None = None,
    env: dict | None = None,
    stop_timeout: float = 20,
    suspended: bool = False,
    restart_policy: dict | None = NO_RESTART,
    **settings,
) -> dict:
    """A server definition running the demo game server (or `invocation`) as a local process.

    Its restart policy is `no` unless given: a test about something else must not see the crash
    handler restart a server that failed on purpose. `restart_policy=None` leaves the key out
    (the product's default policy applies)."""
    if restart_policy is not None:
        settings["restart_policy"] = dict(restart_policy)
    return {
        "settings": {
            "uuid": uuid or str(uuidlib.uuid4()),
            "invocation": invocation or f"{SERVER_PYTHON} -u {GAMESERVER}",
            "environment": {"BOOT_SECONDS": "0.3", **(env or {})},
            "stop_timeout": stop_timeout,
            "suspended": suspended,
            **settings,
        },
        "process_configuration": {
            "startup": {"done": list(done)},
            "stop": stop or {"type": "command", "value": "stop"},
        },
    }


@dataclass
class DaemonProcess:
    """`wingman serve` running for real, on a free port, with its own config and database."""

    folder: Path
    servers: list[dict] = field(default_factory=list)
    extra_config: dict = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    serve_args: list[str] = field(default_factory=list)  # more options of `wingman serve`

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.folder / "wingman.yml"

    def write_config(self) -> None:
        cfg = {
            "token": TOKEN,
            "token_id": "test",
            "audit_tokens": [AUDIT_TOKEN],
            "api": {"host": "127.0.0.1", "port": self.port},
            "system": {"root_directory": str(self.folder / "var")},
            "servers": self.servers,
            **self.extra_config,
        }
        self.config_path.write_text(yaml.safe_dump(cfg))

    def start(self, timeout: float = 30) -> DaemonProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")}
        self.log = open(self.folder / "daemon.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wingman.api.cli", "serve", "--config", str(self.config_path), *self.serve_args],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

        def answering() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.read_log()[-6000:]}")
            resp = httpx.get(self.url + "/api/system", headers=self.headers, timeout=1)
            # Answering already; ready for a test once boot recovery has restored every server
            # and the daemon has settled its heap (that last full collection stops the loop).
            return resp.status_code == 200 and resp.json()["wingman"]["settled"]

        eventually(
            answering,
            timeout,
            lambda: f"the daemon to answer, settled:\n{self.read_log()[-6000:]}",
            interval=0.1,
            ignoring=(httpx.HTTPError,),
        )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def config(self):
        """The daemon's configuration, as it reads its file."""
        from wingman.engine.config import load_config

        return load_config(self.config_path)

    def read_log(self) -> str:
        p = self.folder / "daemon.log"
        return p.read_text(errors="replace") if p.exists() else ""

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {TOKEN}"}

    def client(self, token: str = TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def wait_operation(self, operation_id: str, timeout: float = 60) -> dict:
        """The operation's body, once it has an outcome."""
        with self.client() as c:
            return eventually(
                lambda: c.get(f"/api/operations/{operation_id}").json(),
                timeout,
                f"operation {operation_id} to have an outcome",
                until=lambda body: body["status"] in TERMINAL,
            )

    def wait_state(self, server: str, state: str, timeout: float = 60) -> dict:
        """The server's body, once it is in `state`."""
        with self.client() as c:
            return eventually(
                lambda: c.get(f"/api/servers/{server}").json(),
                timeout,
                f"server {server} to be {state}",
                until=lambda body: body["state"] == state,
            )


def daemon_factory(make_folder):
    """A generator for fixtures: yields `start(servers=[...], folder=None, **extra_config)` that
    runs `wingman serve` in a folder from `make_folder(n)`, and stops every daemon afterwards."""
    started: list[DaemonProcess] = []

    def start(servers: list[dict] | None = None, folder: Path | None = None, **extra) -> DaemonProcess:
        d = DaemonProcess(folder or make_folder(len(started)), servers=servers or [], extra_config=extra)
        started.append(d)
        return d.start()

    yield start
    for d in started:
        d.stop()
        kill_leftovers(d.folder)


def unavailable(reason: str) -> None:
    """What a test needs is missing: a skip that says why on a developer's machine, a failure in
    CI (`CI=true`), where .ci/ installs everything the tests need."""
    import pytest

    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def kill_leftovers(folder: Path) -> None:
    """Kill any process whose working directory is under `folder` (servers a test left running)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(folder)):
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


@asynccontextmanager
async def opened_store(url: str):
    """An EventStore on a migrated database at `url`, closed (and its engine disposed) after."""
    from wingman.engine.store.database import create_engine, upgrade
    from wingman.engine.store.event_store import EventStore

    engine = create_engine(url)
    await upgrade(engine)
    store = EventStore(engine)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        await engine.dispose()
