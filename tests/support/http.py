"""Helpers shared by the tests/test_http_*.py modules (this module holds no tests itself).

A module-scoped daemon factory (one real `wingman serve` per test module where the tests do not
interfere), JSON-error assertions, and a read-only look into the daemon's SQLite event store.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import DaemonProcess, daemon_factory, definition

WINGS_NOT_FOUND = "The requested resource does not exist on this instance."
WINGS_BAD_ACTION = 'The power action provided was not valid, should be one of "stop", "start", "restart", "kill"'
WINGS_SUSPENDED = "Cannot start or restart a server that is suspended."


@pytest.fixture(scope="module")
def module_daemon(tmp_path_factory):
    """Like `daemon_process`, but the daemons live for the whole test module."""
    yield from daemon_factory(lambda n: tmp_path_factory.mktemp("daemon"))


@pytest.fixture(scope="module")
def client(daemon):
    """An authenticated client of the module's `daemon` fixture."""
    with daemon.client() as c:
        yield c


@pytest.fixture
def unchanged(request, daemon):
    """Asserts the test wrote nothing: the module's `UUID` server and the whole log keep their size."""
    uuid = request.module.UUID
    before = (server_version(daemon, uuid), total_events(daemon))
    yield
    assert (server_version(daemon, uuid), total_events(daemon)) == before, "a refused request wrote events"


def assert_json_error(resp: httpx.Response, status: int, message: str | None = None) -> str:
    """A clear JSON error: the status, a JSON object with a string `error`, a request id, no HTML."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    assert "<html" not in resp.text.lower()
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    if message is not None:
        assert body["error"] == message
    assert resp.headers.get("x-request-id"), "every response carries X-Request-Id"
    return body["error"]


def server_version(d: DaemonProcess, uuid: str) -> int:
    with d.client() as c:
        resp = c.get(f"/api/servers/{uuid}")
        assert resp.status_code == 200, resp.text
        return resp.json()["version"]


def total_events(d: DaemonProcess) -> int:
    """The store's last position (`GET /api/system`): changes when anything at all is written."""
    with d.client() as c:
        return c.get("/api/system").json()["wingman"]["events"]


def database_path(d: DaemonProcess) -> Path:
    return d.folder / "var" / "wingman.db"


def stored_events(d: DaemonProcess, uuid: str, db: Path | None = None) -> list[dict]:
    """A server's stream read straight from the SQLite file (read-only; WAL lets us read beside
    the daemon's writer)."""
    conn = sqlite3.connect(f"file:{db or database_path(d)}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute(
            "SELECT version, type, data, metadata FROM events WHERE stream_id = ? ORDER BY version", (uuid,)
        ).fetchall()
    finally:
        conn.close()
    return [
        {"version": v, "type": t, "data": json.loads(data), "metadata": json.loads(meta)} for v, t, data, meta in rows
    ]


def operation(d: DaemonProcess, operation_id: str) -> dict:
    with d.client() as c:
        resp = c.get(f"/api/operations/{operation_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()


def power(d: DaemonProcess, uuid: str, action: str, **body) -> dict:
    """POST a power action that must be accepted; returns the operation body."""
    with d.client() as c:
        resp = c.post(f"/api/servers/{uuid}/power", json={"action": action, **body})
    assert resp.status_code == 202, resp.text
    return resp.json()


def logs(d: DaemonProcess, uuid: str) -> list[str]:
    with d.client() as c:
        resp = c.get(f"/api/servers/{uuid}/logs", params={"size": 1000})
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]


def processes_under(folder: Path) -> list[int]:
    """Pids of live processes whose working directory is under `folder` (a server's processes)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cwd.startswith(str(folder)) and state != "Z":
            pids.append(int(proc.name))
    return pids


def add_server(d: DaemonProcess, **kw) -> str:
    """Add a server (support.definition's keywords) through the API; returns its uuid."""
    doc = definition(**kw)
    with d.client() as c:
        resp = c.post("/api/servers", json=doc)
    assert resp.status_code == 201, resp.text
    return doc["settings"]["uuid"]
