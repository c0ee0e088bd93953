"""An egg's install script, run as Wings runs it, against a real Docker engine, a small real Panel
(tests/support/panel.py), `wingman serve` over HTTP and a real websocket client: the server is
`installing` while its script runs in `<uuid>_installer`, power actions are refused meanwhile,
the outcome is recorded with the script's exit and last lines, the Panel is told, and a daemon
SIGKILLed in the middle adopts the install at its next boot (or records it interrupted).

The scripts wait on facts the test controls (a file it creates in the server's folder), never on
the clock; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from pathlib import Path

import docker
import pytest

from tests.conftest import TEST_META
from tests.support.daemon import definition
from tests.support.panel import PanelStandIn, wait_events, with_panel
from tests.support.waiting import eventually
from tests.support.websocket import authed
from wingman.engine.environments.docker.installer import installer_name
from wingman.engine.install.log_file import LOG_NAME

WAIT = 60
INSTALLING = {"error": "server is currently installing"}
BUSY = {"error": "Cannot execute server reinstall event while another power action is running."}
# A script that says where it is, waits for the test's go-ahead, and writes a file as root.
WAITING_SCRIPT = """#!/bin/sh
echo "installing into /mnt/server as $(id -u), for $P_SERVER_UUID"
echo "line one"
while [ ! -e /mnt/server/go ]; do sleep 0.05; done
echo "line two"
echo "hello from the egg" > /mnt/server/hello.txt
mkdir -p /mnt/server/game && echo data > /mnt/server/game/world.dat
echo "done"
"""
QUICK_SCRIPT = "#!/bin/sh\r\necho quick\r\necho done > /mnt/server/quick.txt\r\n"  # CRLF, as an egg edited on Windows


def install_doc(image: str, script: str, entrypoint: str = "sh") -> dict:
    return {"container_image": image, "entrypoint": entrypoint, "script": script}


def panel_server(uuid: str, image: str) -> dict:
    """A server as a Panel defines it: no `runtime` (the node's remote_runtime, docker, applies)."""
    return definition(
        uuid,
        invocation="echo ready; exec sleep 1000",
        done=("ready",),
        container={"image": image},
        stop={"type": "signal", "value": "SIGKILL"},
    )


@pytest.fixture
def node(daemon_process, docker_image, tmp_path):
    """A Panel and a node under it whose servers are Docker containers off the network."""
    panel = PanelStandIn().start()
    folder = tmp_path / "node"
    system = {"root_directory": str(folder / "var"), "tmp_directory": str(tmp_path / "install-tmp")}

    daemon = daemon_process(
        folder=folder,
        **with_panel(panel, remote_runtime="docker", system=system, docker={"network": {"network_mode": "none"}}),
    )
    wait_events(daemon, "panel.inventory_reconciled")
    yield panel, daemon, tmp_path
    panel.stop()


def events(daemon, uuid: str, kind: str | None = None) -> list[dict]:
    params = {"limit": 1000, **({"type": kind} if kind else {})}
    with daemon.client() as c:
        r = c.get(f"/api/servers/{uuid}/events", params=params)
        assert r.status_code == 200, r.text
        return r.json()["events"]


def wait_event(daemon, uuid: str, kind: str, count: int = 1, timeout: float = WAIT) -> list[dict]:
    return eventually(
        lambda: events(daemon, uuid, kind),
        timeout,
        lambda: f"{count} {kind} on {uuid}; all its events: {events(daemon, uuid)}",
        until=lambda found: len(found) >= count,
    )


def reports(panel: PanelStandIn, uuid: str, count: int = 1) -> list:
    return [
        r.body
        for r in panel.wait_for(
            lambda r: r.path == f"/api/remote/servers/{uuid}/install" and r.method == "POST", timeout=WAIT, count=count
        )
    ]


def folder_of(daemon, uuid: str) -> Path:
    return daemon.folder / "var" / "volumes" / uuid


def create(daemon, uuid: str, start_on_completion: bool = False) -> None:
    with daemon.client() as c:
        r = c.post("/api/servers", json={"uuid": uuid, "start_on_completion": start_on_completion})
        assert r.status_code == 202, r.text


def history(daemon, uuid: str) -> list[tuple[str, str, str]]:
    return [
        (e["data"]["from_state"], e["data"]["trigger"], e["data"]["to_state"])
        for e in events(daemon, uuid, "state.changed")
    ]


def installer(engine_url: str, uuid: str) -> dict | None:
    client = docker.APIClient(base_url=engine_url, version="auto", timeout=30)
    try:
        return client.inspect_container(installer_name(uuid))
    except docker.errors.NotFound:
        return None
    finally:
        client.close()


def wait_for_installer(engine_url: str, uuid: str) -> dict:
    return eventually(
        lambda: installer(engine_url, uuid),
        WAIT,
        "the installer container running",
        until=lambda found: found is not None and found["State"]["Running"],
    )


def outcome_types(daemon, uuid: str) -> list[str]:
    return [
        e["type"]
        for e in events(daemon, uuid, "install.*")
        if e["type"] in ("install.succeeded", "install.failed", "install.interrupted")
    ]


@pytest.mark.docker
def test_create_runs_the_egg_script_and_the_server_is_installing_meanwhile(
    node, docker_uuids, docker_image, docker_engine
):
    panel, daemon, tmp = node
    uuid = docker_uuids.new()
    panel.servers[uuid] = panel_server(uuid, docker_image)
    panel.install_scripts[uuid] = install_doc(docker_image, WAITING_SCRIPT)
    create(daemon, uuid)
    daemon.wait_state(uuid, "installing", WAIT)
    found = wait_for_installer(docker_engine, uuid)
    labels = found["Config"]["Labels"]
    assert labels["Service"] == "Pterodactyl" and labels["ContainerType"] == "server_installer"
    assert found["Config"]["Cmd"] == ["sh", "/mnt/install/install.sh"]
    assert found["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]
    assert "net_raw" in [c.lower() for c in found["HostConfig"]["CapDrop"]]
    assert found["HostConfig"]["Memory"] > 0  # the install limits (docker.installer_limits)
    script_folder = tmp / "install-tmp" / uuid
    assert stat.S_IMODE(script_folder.stat().st_mode) == 0o700

    # Every power action is refused at the door while it installs, a kill too; nothing is recorded.
    with daemon.client() as c:
        for action in ("start", "stop", "restart", "kill"):
            r = c.post(f"/api/servers/{uuid}/power", json={"action": action})
            assert (r.status_code, r.json()) == (409, INSTALLING), (action, r.text)
        assert c.post(f"/api/servers/{uuid}/reinstall").json() == BUSY
    assert events(daemon, uuid, "power.*") == []

    (folder_of(daemon, uuid) / "go").touch()
    [report] = reports(panel, uuid)
    assert report == {"successful": True, "reinstall": False}
    daemon.wait_state(uuid, "offline", WAIT)

    [started] = events(daemon, uuid, "install.started")
    assert started["data"]["reinstall"] is False and started["data"]["runtime"] == "docker"
    [succeeded] = events(daemon, uuid, "install.succeeded")
    data = succeeded["data"]
    assert data["exit_code"] == 0 and data["image"] == docker_image.lstrip("~") and data["entrypoint"] == "sh"
    assert (
        data["last_lines"][-3:] == ["line one", "line two", "done"]
        and data["install_id"] == started["data"]["install_id"]
    )
    assert "installing into /mnt/server as 0" in data["last_lines"][0]  # root in the installer, as Wings
    assert history(daemon, uuid) == [("offline", "install", "installing"), ("installing", "installed", "offline")]
    [reported] = events(daemon, uuid, "panel.install_reported")
    assert reported["data"]["successful"] and reported["data"]["reported"] and not reported["data"]["reinstall"]
    assert outcome_types(daemon, uuid) == ["install.succeeded"]

    # What the script wrote as root is the server's own; the log beside it, 0600, its own too.
    folder = folder_of(daemon, uuid)
    owner = folder.stat().st_uid
    assert owner >= 200000
    for path in (folder / "hello.txt", folder / "game", folder / "game" / "world.dat", folder / LOG_NAME):
        assert path.stat().st_uid == owner, path
    assert (folder / "hello.txt").read_text() == "hello from the egg\n"
    log = folder / LOG_NAME
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and data["log_file"] == str(log)
    text = log.read_text()
    assert f"Server UUID:          {uuid}" in text and f"Container Image:      {docker_image.lstrip('~')}" in text
    assert f"P_SERVER_UUID={uuid}" in text and "line one\nline two\ndone\n" in text
    # Nothing is left of the installer.
    assert installer(docker_engine, uuid) is None and not script_folder.exists()
    assert not events(daemon, uuid, "power.*")  # start_on_completion was false


@pytest.mark.docker
def test_a_failing_script_reports_failure_and_leaves_the_server_offline(
    node, docker_uuids, docker_image, docker_engine
):
    panel, daemon, _ = node
    uuid = docker_uuids.new()
    panel.servers[uuid] = panel_server(uuid, docker_image)
    panel.install_scripts[uuid] = install_doc(docker_image, "echo broken >&2\nexit 3\n")
    create(daemon, uuid, start_on_completion=True)
    assert reports(panel, uuid) == [{"successful": False, "reinstall": False}]
    [failed] = wait_event(daemon, uuid, "install.failed")
    assert failed["data"]["exit_code"] == 3 and "exit code 3" in failed["data"]["reason"]
    assert failed["data"]["last_lines"] == ["broken"]
    assert daemon.wait_state(uuid, "offline")["state"] == "offline"
    assert events(daemon, uuid, "power.*") == []  # start_on_completion: not after a failed install
    assert installer(docker_engine, uuid) is None


@pytest.mark.parametrize(
    "problem, words",
    [
        ("panel", "install script could not be fetched"),
        ("image", "could not be pulled"),
        ("entrypoint", "installer could not be run"),
    ],
)
@pytest.mark.docker
def test_what_the_install_cannot_have_fails_it_with_the_reason(node, docker_uuids, docker_image, problem, words):
    panel, daemon, _ = node
    uuid = docker_uuids.new()
    panel.servers[uuid] = panel_server(uuid, docker_image)
    if problem == "panel":
        panel.answers[("GET", f"/api/remote/servers/{uuid}/install")] = (500, {"errors": [{"detail": "egg gone"}]})
    elif problem == "image":
        panel.install_scripts[uuid] = install_doc("local/no-such-image:none", "true")
    else:
        panel.install_scripts[uuid] = install_doc(docker_image, "true", entrypoint="/no/such/shell")
    create(daemon, uuid)
    assert reports(panel, uuid) == [{"successful": False, "reinstall": False}]
    [failed] = wait_event(daemon, uuid, "install.failed")
    assert words in failed["data"]["reason"], failed
    assert daemon.wait_state(uuid, "offline")["state"] == "offline"
    assert history(daemon, uuid) == [("offline", "install", "installing"), ("installing", "installed", "offline")]


@pytest.mark.docker
async def test_reinstall_stops_the_server_and_a_websocket_hears_the_install(node, docker_uuids, docker_image):
    panel, daemon, tmp = node
    uuid = docker_uuids.new()
    panel.servers[uuid] = panel_server(uuid, docker_image)
    panel.install_scripts[uuid] = install_doc(docker_image, QUICK_SCRIPT)
    await asyncio.to_thread(create, daemon, uuid, True)  # start_on_completion: it runs once installed
    await asyncio.to_thread(daemon.wait_state, uuid, "running", WAIT)
    assert (folder_of(daemon, uuid) / "quick.txt").read_text() == "done\n"  # CRLF made LF: the script ran

    panel.install_scripts[uuid] = install_doc(docker_image, WAITING_SCRIPT)
    # The server plants a link where the log goes: the log replaces the link, its target stays as it is.
    log, target = folder_of(daemon, uuid) / LOG_NAME, tmp / "not-the-servers.txt"
    target.write_text("keep me\n")
    log.unlink()
    log.symlink_to(target)
    async with authed(daemon, uuid, permissions=("*", "admin.websocket.install")) as s:
        with daemon.client() as c:
            assert c.post(f"/api/servers/{uuid}/reinstall").status_code == 202
        seen = await s.until("install output", "line one")
        # Its stop is a power operation of its own (cause reinstall); `installing` is `offline` to a Panel.
        statuses = [f["args"][0] for f in seen if f["event"] == "status"]
        assert statuses == ["stopping", "offline"], seen
        assert [f["event"] for f in seen if f["event"].startswith("install")][:1] == ["install started"]
        assert {"event": "install started", "args": [""]} in seen
        assert {
            "event": "daemon message",
            "args": ["Starting installation process, this could take a few minutes..."],
        } in seen
        # Meanwhile: the socket's power actions and a second reinstall are refused.
        await s.send("set state", "start")
        refusal = await s.until("daemon error")
        assert refusal[-1]["args"][0].endswith("server is currently installing")
        with daemon.client() as c:
            r = c.post(f"/api/servers/{uuid}/reinstall")
            assert (r.status_code, r.json()) == (409, BUSY)
        (folder_of(daemon, uuid) / "go").touch()
        rest = await s.until("install completed")
        lines = [f["args"][0] for f in rest if f["event"] == "install output"]
        assert lines == ["line two", "done"]
        assert {"event": "daemon message", "args": ["Installation process completed."]} in rest
        assert not [f for f in rest if f["event"] == "status"]  # installing -> offline: no change to a Panel
    assert reports(panel, uuid, count=2)[-1] == {"successful": True, "reinstall": True}
    assert target.read_text() == "keep me\n" and not log.is_symlink() and "line two\ndone\n" in log.read_text()
    [stop] = [e for e in events(daemon, uuid, "power.requested") if e["data"]["action"] == "stop"]
    assert stop["metadata"]["cause"] == "reinstall"
    assert history(daemon, uuid)[-4:] == [
        ("running", "stop", "stopping"),
        ("stopping", "exited", "offline"),
        ("offline", "install", "installing"),
        ("installing", "installed", "offline"),
    ]
    started = events(daemon, uuid, "install.started")
    assert [e["data"]["reinstall"] for e in started] == [False, True]
    assert outcome_types(daemon, uuid) == ["install.succeeded", "install.succeeded"]


@pytest.mark.docker
async def test_a_socket_without_the_install_permission_hears_the_install_but_not_its_output(
    node, docker_uuids, docker_image
):
    panel, daemon, _ = node
    uuid = docker_uuids.new()
    panel.servers[uuid] = panel_server(uuid, docker_image)
    panel.install_scripts[uuid] = install_doc(docker_image, QUICK_SCRIPT)
    await asyncio.to_thread(create, daemon, uuid)
    await asyncio.to_thread(reports, panel, uuid)
    async with authed(daemon, uuid) as s:  # `*`: every permission but the admin ones, as with Wings
        with daemon.client() as c:
            assert c.post(f"/api/servers/{uuid}/reinstall").status_code == 202
        seen = await s.until("install completed")
        kinds = [f["event"] for f in seen if f["event"] not in ("stats",)]
        assert "install started" in kinds and "install output" not in kinds, seen


@pytest.mark.docker
def test_a_delete_ends_the_install_first(node, docker_uuids, docker_image, docker_engine):
    panel, daemon, _ = node
    uuid = docker_uuids.new()
    panel.servers[uuid] = panel_server(uuid, docker_image)
    panel.install_scripts[uuid] = install_doc(docker_image, WAITING_SCRIPT)
    create(daemon, uuid)
    wait_for_installer(docker_engine, uuid)
    with daemon.client() as c:
        assert c.delete(f"/api/servers/{uuid}").status_code == 204
    [failed] = events(daemon, uuid, "install.failed")
    assert failed["data"]["reason"] == "cancelled: the server is being deleted"
    assert installer(docker_engine, uuid) is None
    types = [e["type"] for e in events(daemon, uuid)]
    assert types.index("install.failed") < types.index("server.deleted")


@pytest.mark.docker
@pytest.mark.parametrize("installer_left", [True, False], ids=["adopted", "interrupted"])
def test_a_daemon_killed_mid_install_finishes_or_fails_it_at_boot(
    node, docker_uuids, docker_image, docker_engine, installer_left
):
    panel, daemon, _ = node
    uuid = docker_uuids.new()
    panel.servers[uuid] = panel_server(uuid, docker_image)
    panel.install_scripts[uuid] = install_doc(docker_image, WAITING_SCRIPT)
    create(daemon, uuid, start_on_completion=True)
    wait_for_installer(docker_engine, uuid)
    daemon.stop(signal.SIGKILL)
    if not installer_left:
        client = docker.APIClient(base_url=docker_engine, version="auto", timeout=30)
        client.remove_container(installer_name(uuid), force=True)
        client.close()
    else:
        (folder_of(daemon, uuid) / "go").touch()  # it goes on without the daemon; its output is Docker's to keep
    daemon.start()
    if installer_left:
        [adopted] = wait_event(daemon, uuid, "install.adopted")
        assert adopted["metadata"]["cause"] == "boot_recovery"
        [succeeded] = wait_event(daemon, uuid, "install.succeeded")
        assert succeeded["data"]["last_lines"][-2:] == ["line two", "done"]  # from Docker's log
        assert (folder_of(daemon, uuid) / "hello.txt").stat().st_uid == folder_of(daemon, uuid).stat().st_uid
        assert "line one\nline two\ndone\n" in (folder_of(daemon, uuid) / LOG_NAME).read_text()
        assert reports(panel, uuid) == [{"successful": True, "reinstall": False}]
        daemon.wait_state(uuid, "running", WAIT)  # the create's start_on_completion, honoured after adoption
    else:
        [interrupted] = wait_event(daemon, uuid, "install.interrupted")
        assert "nothing is left of its installer" in interrupted["data"]["reason"]
        assert reports(panel, uuid) == [{"successful": False, "reinstall": False}]
        assert daemon.wait_state(uuid, "offline")["state"] == "offline"
        assert events(daemon, uuid, "power.*") == []
    assert len(outcome_types(daemon, uuid)) == 1  # exactly one outcome
    assert installer(docker_engine, uuid) is None


def test_a_process_server_runs_no_script_and_says_so(daemon_process, tmp_path):
    panel = PanelStandIn().start()
    try:
        daemon = daemon_process(**with_panel(panel))  # remote_runtime: process
        wait_events(daemon, "panel.inventory_reconciled")
        doc = definition()
        uuid = doc["settings"]["uuid"]
        panel.servers[uuid] = doc
        create(daemon, uuid)
        assert reports(panel, uuid) == [{"successful": True, "reinstall": False}]
        [succeeded] = wait_event(daemon, uuid, "install.succeeded")
        assert succeeded["data"]["script_ran"] is False and "runtime is `process`" in succeeded["data"]["detail"]
        assert history(daemon, uuid) == [("offline", "install", "installing"), ("installing", "installed", "offline")]
        assert not panel.requests_to(f"/api/remote/servers/{uuid}/install", "GET")  # no script asked for
        assert os.path.isdir(folder_of(daemon, uuid))
    finally:
        panel.stop()


async def test_an_action_accepted_before_an_install_began_is_rejected_in_its_words(engine_harness):
    """The start is accepted (durable) and its operation has not run yet when the reinstall closes
    the door: once it may run, it finds the server installing, and its outcome says so."""
    doc = definition()
    uuid = doc["settings"]["uuid"]
    async with engine_harness([doc]) as h:
        op = await h.act(uuid, "start")
        await h.daemon.installs.reinstall(uuid, TEST_META)  # no await between: the start has not run
        await h.outcome(op)
        assert (op.status, op.reason) == ("rejected", "server is currently installing")
        await h.until_event(uuid, lambda e: e.type == "install.succeeded")  # a local process: no script
        await h.wait_state(uuid, "offline")
