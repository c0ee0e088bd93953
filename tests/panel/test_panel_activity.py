"""Activity back to the Panel, none lost: what websocket users do reaches the Panel's activity log
(`POST /api/remote/activity`) exactly once, through a Panel that fails, a daemon SIGKILLed, and a
Panel that refuses one entry.

A real daemon subprocess with `remote:` pointing at a small real Panel (tests/support/panel.py)
that answers the activity route as Pterodactyl's ActivityProcessingController does: its request
rules (ActivityEventRequest), its timestamp parse, 204 once taken. Actions are taken over a real
websocket with Panel-made JWTs."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import signal
import sqlite3
import threading
import uuid as uuidlib
from datetime import datetime

import pytest

from tests.support.daemon import DaemonProcess, daemon_factory, definition
from tests.support.panel import PanelStandIn
from tests.support.waiting import eventually
from tests.support.websocket import authed

ACTIVITY = "/api/remote/activity"
USER = "8f3a0c2e-5b1d-4e6f-9a7b-0c1d2e3f4a5b"  # ws_support.token's user
INTERVAL = 0.2  # system.activity_send_interval in these tests: batches go out fast


class ActivityPanel(PanelStandIn):
    """The stand-in Panel, taking activity as a Pterodactyl Panel does. `fail_next` answers the
    next activity posts with these statuses; `refuse_command` is a rule of this Panel's own that
    refuses (422) any batch holding that command, as a Panel's validation refuses a batch for one
    entry it does not take."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_next: list[int] = []
        self.refuse_command: str | None = None
        self.taken: list[dict] = []  # every entry the Panel accepted, in order
        self._activity_lock = threading.Lock()

    def _answer(self, r):
        if r.method == "POST" and r.path.endswith("/container/status"):  # Pelican's route
            return 204, None
        if (r.method, r.path) != ("POST", ACTIVITY):
            return super()._answer(r)
        with self._activity_lock:
            if self.fail_next:
                status = self.fail_next.pop(0)
                return status, {"errors": [{"code": "HttpException", "status": str(status), "detail": "down"}]}
            problem = invalid_activity(r.body, self.refuse_command)
            if problem:
                return 422, {"errors": [{"code": "ValidationException", "status": "422", "detail": problem}]}
            self.taken.extend(r.body["data"])
            return 204, None

    def taken_now(self) -> list[dict]:
        with self._activity_lock:
            return list(self.taken)

    def wait_taken(self, count: int, timeout: float = 30) -> list[dict]:
        return eventually(
            self.taken_now,
            timeout,
            f"the Panel to take {count} entries",
            interval=0.02,
            until=lambda t: len(t) >= count,
        )


def invalid_activity(body, refuse_command: str | None) -> str | None:
    """Pterodactyl's ActivityEventRequest rules, and the controller's timestamp parse."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list) or not body["data"]:
        return "The data field is required."
    for i, d in enumerate(body["data"]):
        if not isinstance(d, dict):
            return f"data.{i} must be an array"
        if d.get("user") is not None and not is_uuid(d["user"]):
            return f"data.{i}.user must be a valid UUID"
        if not is_uuid(d.get("server")):
            return f"data.{i}.server must be a valid UUID"
        if not isinstance(d.get("event"), str) or not d["event"]:
            return f"data.{i}.event is required"
        if "metadata" not in d or not (d["metadata"] is None or isinstance(d["metadata"], (dict, list))):
            return f"data.{i}.metadata must be present"
        if d.get("ip") is not None:
            try:
                ipaddress.ip_address(d["ip"])
            except ValueError:
                return f"data.{i}.ip must be a valid IP address"
        stamp = re.sub(r"(\.\d+)Z$", "Z", str(d.get("timestamp")))
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", stamp):
            return f"data.{i}.timestamp is not RFC 3339"
        if refuse_command is not None and (d["metadata"] or {}).get("command") == refuse_command:
            return f"data.{i}.metadata.command is not accepted"
    return None


def is_uuid(value) -> bool:
    try:
        return str(uuidlib.UUID(str(value))) == value
    except ValueError:
        return False


@pytest.fixture
def panel():
    p = ActivityPanel().start()
    yield p
    p.stop()


@pytest.fixture
def daemons(tmp_path):
    yield from daemon_factory(lambda n: tmp_path / f"d{n}")


def activity_config(panel: PanelStandIn, **system) -> dict:
    return {
        "remote": panel.url,
        "remote_runtime": "process",  # the tests' servers are local processes
        "system": {"activity_send_interval": INTERVAL, **system},
    }


def start(daemons, folder, server, panel, flavor: str = "pterodactyl", **system) -> DaemonProcess:
    """A daemon whose Panel is `panel`, which knows the server (a start syncs it from the Panel)."""
    panel.servers[server["settings"]["uuid"]] = server
    extra = {**activity_config(panel, **system), "remote_flavor": flavor}
    extra["system"]["root_directory"] = str(folder / "var")
    return daemons([server], folder=folder, **extra)


async def act(d: DaemonProcess, uuid: str, commands: list[str], power: list[str] = ()) -> None:
    """Over a real websocket: each power action (waiting for the state it leads to), then each
    command, `say <text>` (each answered by the demo server's `[Server] <text>`, so every one was
    recorded and reached the server before the next)."""
    async with authed(d, uuid) as s:
        for action in power:
            await s.send("set state", action)
            await s.until("status", {"start": "running", "stop": "offline", "kill": "offline"}[action])
        for c in commands:
            await s.send("send command", f"say {c}")
            await s.until("console output", f"[Server] {c}")


def activity_of(entries: list[dict]) -> list[tuple]:
    return [(e["event"], (e["metadata"] or {}).get("command", "")[4:] or None) for e in entries]


def stored_cursor(d: DaemonProcess, uuid: str, timeout: float = 30) -> int:
    """The position the daemon has recorded as accepted by the Panel, read from its SQLite file,
    once it covers the server's last console command (it is committed just after the Panel's
    answer)."""
    with d.client() as c:
        last = c.get("/api/events", params={"server": uuid, "type": "console.command"}).json()["events"][-1]

    def accepted() -> int | None:
        with sqlite3.connect(d.folder / "var" / "wingman.db") as db:
            row = db.execute("SELECT position FROM outbox_cursors WHERE name = 'panel_activity'").fetchone()
        return row[0] if row else None

    return eventually(
        accepted,
        timeout,
        f"an accepted position stored, at or past {last['position']}",
        interval=0.02,
        until=lambda position: position is not None and position >= last["position"],
    )


def test_a_batch_refused_three_times_then_accepted_arrives_exactly_once(daemons, panel, tmp_path):
    uuid = str(uuidlib.uuid4())
    d = start(daemons, tmp_path / "d", definition(uuid), panel)
    panel.fail_next = [500, 500, 500]
    commands = [f"say {i}" for i in range(5)]
    asyncio.run(act(d, uuid, commands, power=["start"]))

    taken = panel.wait_taken(6)
    assert len(panel.requests_to(ACTIVITY)) >= 4  # three refused, then what was accepted
    assert activity_of(taken) == [("server:power.start", None)] + [("server:console.command", c) for c in commands]
    for e in taken:  # as the Panel shows them: who, where from, on which server, when
        assert (e["user"], e["server"], e["ip"]) == (USER, uuid, "127.0.0.1")
        assert abs((datetime.fromisoformat(e["timestamp"]) - datetime.now().astimezone()).total_seconds()) < 120
    # Nothing goes twice: the cursor moved past the accepted batch, and later intervals send nothing.
    stored_cursor(d, uuid)
    asyncio.run(act(d, uuid, ["after"]))
    taken = panel.wait_taken(7)
    assert activity_of(taken).count(("server:console.command", "say 0")) == 1
    assert activity_of(taken)[-1] == ("server:console.command", "after")
    assert len(taken) == 7
    assert not [r for r in panel.requests if r.path.endswith("/container/status")]  # Pelican's alone


def test_entries_not_sent_when_the_daemon_is_sigkilled_arrive_after_the_restart(daemons, panel, tmp_path):
    uuid = str(uuidlib.uuid4())
    folder = tmp_path / "d"
    d = start(daemons, folder, definition(uuid), panel)
    asyncio.run(act(d, uuid, ["accepted 1", "accepted 2"], power=["start"]))
    panel.wait_taken(3)
    stored_cursor(d, uuid)  # the Panel's acceptance is durable before the kill

    panel.stop()  # the Panel goes down: what follows waits in the log
    later = [f"pending {i}" for i in range(4)]
    asyncio.run(act(d, uuid, later))
    d.stop(signal.SIGKILL)

    panel.start()  # back on the same port
    d2 = start(daemons, folder, definition(uuid), panel)
    taken = panel.wait_taken(7)
    # The server may still run (adopted after the kill); one more command proves the queue flows on.
    assert activity_of(taken) == (
        [
            ("server:power.start", None),
            ("server:console.command", "accepted 1"),
            ("server:console.command", "accepted 2"),
        ]
        + [("server:console.command", c) for c in later]
    )
    d2.wait_state(uuid, "running")
    asyncio.run(act(d2, uuid, ["after restart"]))
    taken = panel.wait_taken(8)
    assert len(taken) == 8 and activity_of(taken)[-1] == ("server:console.command", "after restart")


def test_an_entry_the_panel_refuses_is_set_aside_recorded_and_the_queue_goes_on(daemons, panel, tmp_path):
    uuid = str(uuidlib.uuid4())
    d = start(daemons, tmp_path / "d", definition(uuid), panel)
    panel.refuse_command = "say refused"
    asyncio.run(act(d, uuid, ["before", "refused", "after"], power=["start"]))

    taken = panel.wait_taken(3)
    assert activity_of(taken) == [
        ("server:power.start", None),
        ("server:console.command", "before"),
        ("server:console.command", "after"),
    ]
    with d.client() as c:
        found = eventually(
            lambda: c.get("/api/events", params={"server": uuid, "type": "panel.activity_refused"}).json()["events"],
            30,
            "the refusal recorded",
        )
    refusal = found[0]
    assert refusal["data"]["activity"] == "server:console.command"
    assert refusal["data"]["status"] == 422
    assert "not accepted" in refusal["data"]["reason"]
    # The queue is not wedged: later entries flow, and the refused one is never sent again.
    asyncio.run(act(d, uuid, ["later"]))
    taken = panel.wait_taken(4)
    assert activity_of(taken)[-1] == ("server:console.command", "later")
    assert len(taken) == 4


def test_a_pelican_panel_hears_each_servers_latest_state(daemons, panel, tmp_path):
    uuid = str(uuidlib.uuid4())
    d = start(daemons, tmp_path / "d", definition(uuid), panel, flavor="pelican")
    path = f"/api/remote/servers/{uuid}/container/status"

    def last_status() -> dict:
        return panel.requests_to(path, "POST")[-1].body["data"]

    asyncio.run(act(d, uuid, [], power=["start"]))
    panel.wait_for(lambda r: r.path == path and r.body["data"]["new_state"] == "running")
    assert last_status() == {"previous_state": "starting", "new_state": "running"}

    panel.stop()  # down while the server stops: the Panel hears of it when it is back
    asyncio.run(act(d, uuid, [], power=["stop"]))
    panel.start()
    panel.wait_for(lambda r: r.path == path and r.body["data"]["new_state"] == "offline")
    assert last_status() == {"previous_state": "stopping", "new_state": "offline"}
