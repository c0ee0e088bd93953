"""DELETE /api/servers/{uuid} as the Panel sends it: whatever the server's state, as Wings does.

A real daemon (`wingman serve`) over a real socket, real game servers (local processes running as
users of their own, and containers of a real Docker engine). A running server is suspended, killed
through the power engine (an operation with its outcome), its container or console files removed,
deleted, and its folder removed in the background without following the symlinks its server made;
its history still reads back afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import SHARED, TOKEN, definition, unavailable
from tests.support.docker_engine import inspect_server_container
from tests.support.http import WINGS_NOT_FOUND, assert_json_error, power, processes_under
from tests.support.waiting import eventually

WAIT = 60
STEPS = ["server.suspended", "server.environment_destroyed", "server.deleted"]
DELETE_SETTLE = {
    "power.requested",
    "power.started",
    "process.exited",
    "state.changed",
    "power.succeeded",
    "power.cancelled",
}


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon()


@pytest.fixture(scope="module")
def client(daemon):
    with daemon.client() as c:
        yield c


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A folder outside every server's, with a file in it: what a hostile symlink points to."""
    folder = Path(SHARED) / f"outside-{os.urandom(4).hex()}"
    folder.mkdir(mode=0o755)
    (folder / "keep.txt").write_text("not the server's")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def hostile(outside: Path) -> str:
    """Shell lines a game server runs to leave symlinks to what is not its own in its folder."""
    return (
        f"mkdir -p data/sub && ln -s {outside} escape && ln -s {outside}/keep.txt escape_file && "
        f"ln -s {outside} data/sub/deeper && echo world > data/level.dat"
    )


def folder_of(daemon, uuid: str) -> Path:
    return daemon.folder / "var" / "volumes" / uuid


def events(client, uuid: str) -> list[dict]:
    out, after = [], 0
    while after is not None:
        r = client.get(f"/api/servers/{uuid}/events", params={"after": after, "limit": 1000})
        assert r.status_code == 200, r.text
        out += r.json()["events"]
        after = r.json()["next_after"]
    return out


def files_outcome(client, uuid: str) -> dict:
    """The files' step, once it is in the log (it runs after the answer)."""
    return eventually(
        lambda: next((e for e in events(client, uuid) if e["type"].startswith("server.files_")), None),
        WAIT,
        what="the files' removal recorded",
    )


def add_and_start(daemon, client, doc: dict) -> str:
    uuid = doc["settings"]["uuid"]
    assert client.post("/api/servers", json=doc).status_code == 201
    assert daemon.wait_operation(power(daemon, uuid, "start")["id"], WAIT)["status"] == "succeeded"
    daemon.wait_state(uuid, "running", WAIT)
    return uuid


def delete(client, uuid: str) -> list[dict]:
    """DELETE as the Panel sends it; returns the events it wrote (up to `server.deleted`)."""
    before = len(events(client, uuid))
    resp = client.delete(f"/api/servers/{uuid}")
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    return events(client, uuid)[before:]


def assert_steps(written: list[dict], request_id: str | None = None) -> dict | None:
    """The delete's own steps in order, each caused by the delete; returns its kill operation."""
    steps = [e for e in written if e["type"] not in DELETE_SETTLE]
    assert [e["type"] for e in steps[:3]] == STEPS, [e["type"] for e in written]
    for e in steps[:3]:
        assert e["metadata"]["cause"] == "delete" and e["metadata"]["actor"] == "node-token", e
    kills = [e for e in written if e["type"] == "power.requested" and e["data"]["action"] == "kill"]
    assert len(kills) <= 1
    if kills:
        assert kills[0]["metadata"]["cause"] == "delete"
        # The kill happened between the suspension and the container's removal.
        types = [e["type"] for e in written]
        assert (
            types.index("server.suspended")
            < types.index("power.requested")
            < types.index("server.environment_destroyed")
        )
    return kills[0] if kills else None


def assert_gone_but_remembered(client, uuid: str) -> None:
    assert_json_error(client.get(f"/api/servers/{uuid}"), 404, WINGS_NOT_FOUND)
    assert uuid not in [s["uuid"] for s in client.get("/api/servers").json()]
    state = client.get(f"/api/servers/{uuid}/state")
    assert state.status_code == 200, state.text
    assert state.json()["deleted"] is True and state.json()["suspended"] is True and state.json()["state"] == "offline"
    assert client.delete(f"/api/servers/{uuid}").status_code == 404


def test_a_running_local_server_is_killed_deleted_and_its_files_removed_without_following_links(
    daemon, client, outside
):
    doc = definition(invocation=f"{hostile(outside)} && exec {definition()['settings']['invocation']}")
    uuid = add_and_start(daemon, client, doc)
    folder = folder_of(daemon, uuid)
    assert (folder / "escape").is_symlink() and (folder / "data" / "level.dat").exists()
    pids = processes_under(folder)
    assert pids, "the server runs in its folder"

    written = delete(client, uuid)

    kill = assert_steps(written)
    assert kill is not None, "a running server is killed"
    op = daemon.wait_operation(kill["data"]["operation_id"])  # the kill is an operation of its own
    assert op["action"] == "kill" and op["status"] == "succeeded" and op["reason"] == "killed"
    exited = next(e for e in written if e["type"] == "state.changed")
    assert (exited["data"]["from_state"], exited["data"]["to_state"]) == ("running", "offline")
    destroyed = next(e for e in written if e["type"] == "server.environment_destroyed")
    assert destroyed["data"]["runtime"] == "process" and destroyed["data"]["removed"]
    eventually(
        lambda: not any(Path(f"/proc/{p}").exists() and _alive(p) for p in pids),
        WAIT,
        what="the server's processes gone",
    )
    assert_gone_but_remembered(client, uuid)

    removed = files_outcome(client, uuid)
    assert removed["type"] == "server.files_removed", removed
    assert removed["data"] == {"folder": str(folder), "existed": True}
    assert removed["metadata"]["cause"] == "delete"
    assert not folder.exists()
    assert not [p for p in folder.parent.iterdir() if uuid in p.name], "nothing of the server is left aside"
    # What its symlinks pointed to is untouched.
    assert (outside / "keep.txt").read_text() == "not the server's"
    # The audit finds the delete's history whole: every operation with its outcome, every change legal.
    report = client.get("/api/audit/verify", params={"server": uuid}).json()
    assert report["ok"] and report["first_problem"] is None, report


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_starting_server_is_deleted_and_its_start_cancelled(daemon, client):
    doc = definition(env={"BOOT_SECONDS": "60"})
    uuid = doc["settings"]["uuid"]
    assert client.post("/api/servers", json=doc).status_code == 201
    start = power(daemon, uuid, "start")
    daemon.wait_state(uuid, "starting", WAIT)

    written = delete(client, uuid)

    kill = assert_steps(written)
    assert kill is not None
    started = daemon.wait_operation(start["id"])
    assert started["status"] == "cancelled", started
    cancelled = next(e for e in written if e["type"] == "power.cancelled")
    assert cancelled["data"]["cancelled_by"] == kill["data"]["operation_id"]
    assert_gone_but_remembered(client, uuid)
    assert files_outcome(client, uuid)["type"] == "server.files_removed"
    assert not folder_of(daemon, uuid).exists()


def test_an_offline_server_that_never_ran_is_deleted_without_a_kill(daemon, client):
    doc = definition()
    uuid = doc["settings"]["uuid"]
    assert client.post("/api/servers", json=doc).status_code == 201

    written = delete(client, uuid)

    assert assert_steps(written) is None
    assert not [e for e in written if e["type"].startswith("power.")]
    removed = files_outcome(client, uuid)
    assert removed["type"] == "server.files_removed" and removed["data"]["existed"] is False
    assert_gone_but_remembered(client, uuid)


def test_the_same_server_created_again_at_once_gets_a_new_folder(daemon, client):
    doc = definition()
    uuid = add_and_start(daemon, client, doc)
    (folder_of(daemon, uuid) / "old.txt").write_text("from before")
    delete(client, uuid)
    # The same uuid again (the Panel re-creating a server): a fresh folder, never the old one.
    assert client.post("/api/servers", json=doc).status_code == 201
    assert daemon.wait_operation(power(daemon, uuid, "start")["id"], WAIT)["status"] == "succeeded"
    files_outcome(client, uuid)
    assert folder_of(daemon, uuid).is_dir() and not (folder_of(daemon, uuid) / "old.txt").exists()
    assert daemon.wait_operation(power(daemon, uuid, "kill")["id"], WAIT)["status"] == "succeeded"


def test_a_folder_that_cannot_be_removed_is_recorded_and_the_delete_still_succeeds(daemon, client):
    if shutil.which("chattr") is None:
        unavailable("chattr (e2fsprogs) is not installed")
    uuid = add_and_start(daemon, client, definition())
    folder = folder_of(daemon, uuid)
    stuck = folder / "stuck.txt"
    stuck.write_text("immutable")
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode != 0:
        unavailable("this filesystem or this user cannot make a file immutable")
    left_at = None
    try:
        assert_steps(delete(client, uuid))
        failed = files_outcome(client, uuid)
        assert failed["type"] == "server.files_removal_failed", failed
        left_at = Path(failed["data"]["left_at"])
        assert failed["data"]["folder"] == str(folder) and left_at != folder
        assert any("stuck.txt" in p and "not permitted" in p for p in failed["data"]["problems"]), failed
        assert (left_at / "stuck.txt").exists() and not folder.exists()
        assert_gone_but_remembered(client, uuid)
    finally:
        for path in (stuck, left_at / "stuck.txt" if left_at else None):
            if path is not None and path.exists():
                subprocess.run(["chattr", "-i", str(path)], check=False)
        if left_at is not None:
            shutil.rmtree(left_at, ignore_errors=True)


@pytest.mark.docker
def test_a_running_container_is_killed_removed_and_its_files_removed(
    daemon, client, outside, docker_uuids, docker_image, docker_engine
):
    uuid = docker_uuids.new()
    invocation = (
        f"ln -s {outside} escape; mkdir -p data; echo world > data/level.dat; echo ready; while read line; do :; done"
    )
    doc = definition(uuid, invocation=invocation, done=("ready",), runtime="docker", container={"image": docker_image})
    add_and_start(daemon, client, doc)
    folder = folder_of(daemon, uuid)
    assert (folder / "escape").is_symlink() and (folder / "data" / "level.dat").exists()
    assert inspect_server_container(docker_engine, uuid)["State"]["Running"]

    written = delete(client, uuid)

    kill = assert_steps(written)
    assert kill is not None
    assert daemon.wait_operation(kill["data"]["operation_id"])["status"] == "succeeded"
    destroyed = next(e for e in written if e["type"] == "server.environment_destroyed")
    assert destroyed["data"]["runtime"] == "docker" and len(destroyed["data"]["removed"]) == 1
    assert inspect_server_container(docker_engine, uuid) is None  # the container is gone
    assert_gone_but_remembered(client, uuid)
    removed = files_outcome(client, uuid)
    assert removed["type"] == "server.files_removed", removed
    assert not folder.exists()
    assert (outside / "keep.txt").read_text() == "not the server's"


def test_an_unreachable_docker_engine_fails_the_delete_clearly_and_the_server_stays_suspended(daemon_process):
    host = "unix:///tmp/no-such-docker.sock"
    doc = definition(runtime="docker", container={"image": "local/busybox:test"})
    uuid = doc["settings"]["uuid"]
    d = daemon_process(servers=[doc], docker={"host": host})
    with d.client() as c:
        error = assert_json_error(c.delete(f"/api/servers/{uuid}"), 503)
        assert host in error, error
        body = c.get(f"/api/servers/{uuid}").json()  # still here, and no start is accepted any more
        assert body["state"] == "offline" and body["is_suspended"] is True
        assert c.post(f"/api/servers/{uuid}/power", json={"action": "start"}).status_code == 400
        assert "server.deleted" not in [e["type"] for e in events(c, uuid)]


def test_two_deletes_at_once_end_as_one(daemon, client):
    """A Panel retrying its delete while the first is under way: one kill, one deletion, both 204."""
    uuid = add_and_start(daemon, client, definition())
    before = len(events(client, uuid))

    async def both():
        async with httpx.AsyncClient(
            base_url=daemon.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as c:
            return await asyncio.gather(c.delete(f"/api/servers/{uuid}"), c.delete(f"/api/servers/{uuid}"))

    answers = asyncio.run(both())
    assert [r.status_code for r in answers] == [204, 204], [r.text for r in answers]
    files_outcome(client, uuid)
    types = [e["type"] for e in events(client, uuid)[before:]]
    assert types.count("power.requested") == 1 and types.count("server.deleted") == 1, types
    assert "power.failed" not in types
