"""Scheduled power actions (issue 31), end to end: a real `wingman serve` whose schedules read the
time from a file the test writes (engine.schedules.clock.FileClock), so a schedule comes due when
the test says, never by waiting for the wall clock. Everything is asserted on the log, over HTTP."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import httpx
import pytest

from tests.support import daemon as support_daemon
from tests.support.daemon import DaemonProcess, definition, kill_leftovers
from tests.support.waiting import eventually
from wingman.engine.schedules.clock import CLOCK_FILE_VARIABLE

OUTCOMES = {"power.succeeded", "power.failed", "power.rejected", "power.cancelled", "power.interrupted"}


@dataclass
class ClockedDaemon(DaemonProcess):
    """A daemon whose schedules read the time from `clock_file`."""

    clock_file: Path = Path("/nonexistent")

    def start(self, timeout: float = 30) -> ClockedDaemon:
        real = subprocess.Popen

        def popen(*args, env=None, **kw):
            return real(*args, env={**(env or {}), CLOCK_FILE_VARIABLE: str(self.clock_file)}, **kw)

        with mock.patch.object(support_daemon.subprocess, "Popen", popen):
            super().start(timeout)
        return self

    def set_clock(self, moment: datetime) -> None:
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(moment.isoformat())
        tmp.replace(self.clock_file)  # never read half written

    def events(self, server: str, types: str = "") -> list[dict]:
        with self.client() as c:
            params = {"limit": 1000, **({"type": types} if types else {})}
            return c.get(f"/api/servers/{server}/events", params=params).json()["events"]

    def wait_event(self, server: str, type_: str, timeout: float = 30, until=lambda ev: True) -> dict:
        return eventually(
            lambda: next((e for e in self.events(server) if e["type"] == type_ and until(e)), None),
            timeout,
            lambda: f"a {type_} event on {server}; log:\n{self.read_log()[-3000:]}",
        )

    def add(self, server: str, schedule: dict) -> dict:
        with self.client() as c:
            resp = c.post(f"/api/servers/{server}/schedules", json=schedule)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def fire(self, server: str, schedule_id: str) -> str:
        """Move the clock to the schedule's next due time; that time."""
        with self.client() as c:
            found = c.get(f"/api/servers/{server}/schedules").json()["schedules"]
        due = next(s for s in found if s["id"] == schedule_id)["next_due"]
        self.set_clock(datetime.fromisoformat(due) + timedelta(seconds=1))
        return due


@pytest.fixture
def clocked(tmp_path):
    started: list[ClockedDaemon] = []

    def start(servers: list[dict], folder: Path | None = None) -> ClockedDaemon:
        folder = folder or tmp_path / f"d{len(started)}"
        folder.mkdir(parents=True, exist_ok=True)
        d = ClockedDaemon(folder, servers=servers, clock_file=folder / "clock")
        if not d.clock_file.exists():
            d.set_clock(datetime.now(UTC))
        started.append(d)
        return d.start()

    yield start
    for d in started:
        d.stop()
        kill_leftovers(d.folder)


def _power(d: ClockedDaemon, server: str, action: str) -> str:
    with d.client() as c:
        resp = c.post(f"/api/servers/{server}/power", json={"action": action})
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def _ops_by_schedule(events: list[dict], schedule_id: str) -> list[dict]:
    return [e for e in events if e["type"] == "power.requested" and e["metadata"].get("schedule_id") == schedule_id]


def _position(events: list[dict], type_: str, operation_id: str) -> int:
    return next(e["position"] for e in events if e["type"] == type_ and e["data"].get("operation_id") == operation_id)


def test_a_scheduled_restart_waits_for_the_power_lock_and_is_an_ordinary_operation(clocked):
    server = definition(env={"BOOT_SECONDS": "2"})
    uuid = server["settings"]["uuid"]
    d = clocked([server])
    d.add(uuid, {"id": "nightly", "cron": "0 4 * * *", "timezone": "Europe/Paris", "action": "restart"})
    start_id = _power(d, uuid, "start")  # holds the power lock for ~2 s of boot
    d.wait_event(uuid, "power.started", until=lambda e: e["data"]["operation_id"] == start_id)
    due = d.fire(uuid, "nightly")
    assert due.endswith("+01:00") and "T04:00:00" in due  # 04:00 in Paris, in winter

    finished = d.wait_event(uuid, "schedule.run_finished", timeout=60)
    assert finished["data"]["outcome"] == "succeeded", finished
    events = d.events(uuid)
    (restart,) = _ops_by_schedule(events, "nightly")
    op = restart["data"]["operation_id"]
    assert restart["data"]["action"] == "restart"
    assert restart["metadata"]["actor"] == "system:schedule"
    assert restart["metadata"]["run_id"] == finished["data"]["run_id"]
    # Requested while the operator's start held the lock, it took the lock only after that start's outcome.
    assert _position(events, "power.requested", op) < _position(events, "power.succeeded", start_id)
    assert _position(events, "power.succeeded", start_id) < _position(events, "power.started", op)
    assert d.wait_operation(op)["status"] == "succeeded"
    fired = next(e for e in events if e["type"] == "schedule.fired")
    assert fired["data"]["due"] == due and fired["position"] < restart["position"]


def test_a_condition_that_does_not_hold_skips_with_its_reason(clocked):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = clocked([server])
    d.add(
        uuid,
        {"id": "if-up", "cron": "*/10 * * * *", "action": "restart", "conditions": {"only_in_states": ["running"]}},
    )
    due = d.fire(uuid, "if-up")
    skipped = d.wait_event(uuid, "schedule.skipped")
    assert skipped["data"]["condition"] == "only_in_states" and skipped["data"]["due"] == due
    assert "offline" in skipped["data"]["reason"] and "running" in skipped["data"]["reason"]
    assert "skipped" in skipped["what"] and skipped["why"]

    # Not within 30 minutes of an operator's action: the operator's kill just now stops the next one.
    d.add(
        uuid,
        {
            "id": "quiet",
            "cron": "*/10 * * * *",
            "action": "start",
            "conditions": {"not_within_minutes_of_operator": 30},
        },
    )
    kill = _power(d, uuid, "kill")
    d.wait_operation(kill)
    d.fire(uuid, "quiet")
    skipped = d.wait_event(uuid, "schedule.skipped", until=lambda e: e["data"]["schedule_id"] == "quiet")
    assert skipped["data"]["condition"] == "not_within_minutes_of_operator"
    assert kill in skipped["data"]["reason"]

    with d.client() as c:  # the clock moves on below: these two would come due again
        for done in ("if-up", "quiet"):
            assert c.delete(f"/api/servers/{uuid}/schedules", params={"id": done}).status_code == 204

    # skip_next: the next due time is skipped, once.
    d.add(uuid, {"id": "once", "cron": "*/10 * * * *", "action": "kill", "skip_next": True})
    d.fire(uuid, "once")
    d.wait_event(uuid, "schedule.skipped", until=lambda e: e["data"]["condition"] == "skip_next")
    d.fire(uuid, "once")
    assert d.wait_event(uuid, "schedule.run_finished", until=lambda e: e["data"]["schedule_id"] == "once")
    assert not _ops_by_schedule(d.events(uuid), "if-up") and not _ops_by_schedule(d.events(uuid), "quiet")


def test_a_chain_runs_in_order_each_step_after_the_previous_outcome(clocked):
    server = definition()
    uuid = server["settings"]["uuid"]
    d = clocked([server])
    d.wait_operation(_power(d, uuid, "start"))
    d.add(
        uuid,
        {
            "id": "backup",
            "cron": "30 3 * * *",
            "steps": [{"action": "command", "command": "say backing up"}, {"action": "stop"}, {"action": "start"}],
        },
    )
    d.fire(uuid, "backup")
    finished = d.wait_event(uuid, "schedule.run_finished", timeout=60)
    assert finished["data"] == {**finished["data"], "outcome": "succeeded", "steps_done": 3}
    events = d.events(uuid)
    command = next(e for e in events if e["type"] == "console.command")
    assert command["data"]["command"] == "say backing up" and command["metadata"]["schedule_id"] == "backup"
    stop, start = _ops_by_schedule(events, "backup")
    assert (stop["data"]["action"], start["data"]["action"]) == ("stop", "start")
    assert command["position"] < stop["position"]
    assert _position(events, "power.succeeded", stop["data"]["operation_id"]) < start["position"]
    d.wait_state(uuid, "running")

    # stop -> command -> start: the command finds no process, so the chain ends there, failed, and
    # the start is never asked for (documented in docs/schedules.md).
    d.add(
        uuid,
        {
            "id": "strict",
            "cron": "30 3 * * *",
            "steps": [{"action": "stop"}, {"action": "command", "command": "backup"}, {"action": "start"}],
        },
    )
    d.fire(uuid, "strict")
    failed = d.wait_event(uuid, "schedule.run_finished", until=lambda e: e["data"]["schedule_id"] == "strict")
    assert failed["data"]["outcome"] == "failed" and failed["data"]["steps_done"] == 1
    assert "step 2 (command)" in failed["data"]["reason"]
    assert [e["data"]["action"] for e in _ops_by_schedule(d.events(uuid), "strict")] == ["stop"]


def test_an_operators_kill_cancels_a_scheduled_chain(clocked):
    server = definition(env={"BOOT_SECONDS": "30"})
    uuid = server["settings"]["uuid"]
    d = clocked([server])
    d.add(
        uuid, {"id": "up", "cron": "0 6 * * *", "steps": [{"action": "start"}, {"action": "command", "command": "hi"}]}
    )
    d.fire(uuid, "up")
    requested = d.wait_event(uuid, "power.requested", until=lambda e: e["metadata"].get("schedule_id") == "up")
    start_op = requested["data"]["operation_id"]
    d.wait_event(uuid, "power.started", until=lambda e: e["data"]["operation_id"] == start_op)
    kill = _power(d, uuid, "kill")

    finished = d.wait_event(uuid, "schedule.run_finished")
    assert finished["data"]["outcome"] == "cancelled", finished
    assert kill in finished["data"]["reason"] and finished["data"]["operation_id"] == kill
    assert d.wait_operation(start_op)["status"] == "cancelled"
    assert d.wait_operation(kill)["status"] == "succeeded"
    assert not [e for e in d.events(uuid) if e["type"] == "console.command"]


def test_a_daemon_killed_mid_chain_abandons_it_and_every_operation_has_one_outcome(clocked, tmp_path):
    server = definition(env={"BOOT_SECONDS": "30"})
    uuid = server["settings"]["uuid"]
    folder = tmp_path / "node"
    d = clocked([server], folder=folder)
    d.add(
        uuid, {"id": "up", "cron": "0 6 * * *", "steps": [{"action": "start"}, {"action": "command", "command": "hi"}]}
    )
    d.fire(uuid, "up")
    requested = d.wait_event(uuid, "power.requested", until=lambda e: e["metadata"].get("schedule_id") == "up")
    d.wait_event(uuid, "power.started", until=lambda e: e["data"]["operation_id"] == requested["data"]["operation_id"])
    d.stop(sig=signal.SIGKILL)
    kill_leftovers(folder)  # the server's process too: the machine lost power

    again = clocked([server], folder=folder)
    abandoned = again.wait_event(uuid, "schedule.run_finished")
    assert abandoned["data"]["outcome"] == "abandoned" and "remaining steps" in abandoned["data"]["reason"]
    assert again.wait_operation(requested["data"]["operation_id"])["status"] == "interrupted"
    events = again.events(uuid)
    for req in (e for e in events if e["type"] == "power.requested"):
        outcomes = [
            e for e in events if e["type"] in OUTCOMES and e["data"]["operation_id"] == req["data"]["operation_id"]
        ]
        assert len(outcomes) == 1, (req, outcomes)
    assert not [e for e in events if e["type"] == "console.command"]
    runs = [e for e in events if e["type"] == "schedule.fired"]
    assert len(runs) == 1 and len([e for e in events if e["type"] == "schedule.run_finished"]) == 1


def test_runs_missed_while_the_daemon_was_down_follow_each_schedules_policy(clocked, tmp_path):
    server = definition()
    uuid = server["settings"]["uuid"]
    folder = tmp_path / "node"
    d = clocked([server], folder=folder)
    d.add(uuid, {"id": "skipper", "cron": "0 * * * *", "action": "kill", "missed": "skip"})
    d.add(uuid, {"id": "catcher", "cron": "0 * * * *", "action": "start", "missed": "run_once"})
    d.stop()
    d.set_clock(datetime.now(UTC) + timedelta(hours=3, minutes=1))  # three hourly runs pass while it is down

    again = clocked([server], folder=folder)
    missed = eventually(
        lambda: {e["data"]["schedule_id"]: e["data"] for e in again.events(uuid, "schedule.missed")},
        30,
        "both schedules' missed-run decisions",
        until=lambda found: len(found) == 2,
    )
    assert missed["skipper"]["count"] == missed["catcher"]["count"] == 3
    assert (missed["skipper"]["policy"], missed["catcher"]["policy"]) == ("skip", "run_once")
    fired = again.wait_event(uuid, "schedule.fired")
    assert fired["data"]["schedule_id"] == "catcher" and fired["data"]["missed"] is True
    assert fired["data"]["due"] == missed["catcher"]["last_due"]
    again.wait_event(uuid, "schedule.run_finished", until=lambda e: e["data"]["outcome"] == "succeeded")
    again.wait_state(uuid, "running")
    assert not _ops_by_schedule(again.events(uuid), "skipper")
    assert len(again.events(uuid, "schedule.fired")) == 1


@pytest.mark.parametrize(
    "schedule, field",
    [
        ({"cron": "61 * * * *", "action": "start"}, "cron"),
        ({"cron": "not a cron", "action": "start"}, "cron"),
        ({"cron": "* * * * *", "action": "explode"}, "action"),
        ({"cron": "* * * * *", "action": "start", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        (
            {"cron": "* * * * *", "action": "start", "conditions": {"only_in_states": ["flying"]}},
            "conditions.only_in_states.0",
        ),
        ({"cron": "* * * * *", "steps": [{"action": "stop"}, {"action": "command"}]}, "steps.1"),
        ({"cron": "* * * * *"}, "schedule"),
    ],
)
def test_a_bad_schedule_is_a_422_naming_its_field_and_writes_nothing(module_clocked, schedule, field):
    d, uuid = module_clocked
    before = d.events(uuid)
    with d.client() as c:
        resp = c.post(f"/api/servers/{uuid}/schedules", json=schedule)
        assert resp.status_code == 422, resp.text
        assert resp.json()["field"] == field, resp.json()
        assert c.get(f"/api/servers/{uuid}/schedules").json()["schedules"] == []
    assert d.events(uuid) == before


def test_a_definition_with_a_bad_schedule_is_a_422_and_is_not_registered(module_clocked):
    d, _ = module_clocked
    bad = definition()
    bad["schedules"] = [{"cron": "0 4 * *", "action": "restart"}]
    with d.client() as c:
        resp = c.post("/api/servers", json=bad)
        assert resp.status_code == 422 and "schedules.0.cron" in resp.json()["error"], resp.text
        assert c.get(f"/api/servers/{bad['settings']['uuid']}").status_code == 404


@pytest.fixture(scope="module")
def module_clocked(tmp_path_factory):
    server = definition()
    folder = tmp_path_factory.mktemp("schedules")
    d = ClockedDaemon(folder, servers=[server], clock_file=folder / "clock")
    d.set_clock(datetime.now(UTC))
    d.start()
    yield d, server["settings"]["uuid"]
    d.stop()
    kill_leftovers(folder)


def test_a_definitions_schedules_are_recorded_and_follow_its_changes(clocked):
    server = definition()
    server["schedules"] = [{"id": "daily", "cron": "0 5 * * *", "action": "restart"}]
    uuid = server["settings"]["uuid"]
    d = clocked([server])
    added = d.wait_event(uuid, "schedule.added")
    assert added["data"]["source"] == "definition" and added["data"]["schedule_id"] == "daily"
    d.add(uuid, {"id": "mine", "cron": "0 6 * * *", "action": "stop"})
    with d.client() as c:
        listed = {s["id"]: s["source"] for s in c.get(f"/api/servers/{uuid}/schedules").json()["schedules"]}
        assert listed == {"daily": "definition", "mine": "api"}
        assert c.delete(f"/api/servers/{uuid}/schedules", params={"id": "mine"}).status_code == 204
        assert c.delete(f"/api/servers/{uuid}/schedules", params={"id": "mine"}).status_code == 204  # nothing left
        assert c.delete(f"/api/servers/{uuid}/schedules", params={"id": "not one"}).json()["field"] == "id"
    (removed,) = d.events(uuid, "schedule.removed")  # the second delete recorded nothing
    assert removed["data"] == {"schedule_id": "mine", "source": "api"} and removed["metadata"]["actor"] == "node-token"


def test_the_cli_adds_lists_and_deletes(module_clocked):
    d, uuid = module_clocked
    base = ["wingman", "schedules", uuid]
    flags = ["--url", d.url, "--token", support_daemon.TOKEN]

    def cli(*args: str) -> subprocess.CompletedProcess:
        import sys

        return subprocess.run(
            [sys.executable, "-m", "wingman.api.cli", *base[1:], *args, *flags],
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = cli(
        "add",
        "--id",
        "cli-one",
        "--cron",
        "15 2 * * 1",
        "--tz",
        "Asia/Tokyo",
        "--step",
        "stop",
        "--step",
        "command:hello",
        "--step",
        "start",
    )
    assert made.returncode == 0, made.stderr
    listed = cli("list", "--json")
    assert listed.returncode == 0 and '"cli-one"' in listed.stdout and "Asia/Tokyo" in listed.stdout
    refused = cli("add", "--cron", "nope", "--step", "start")
    assert refused.returncode == 1 and "cron" in refused.stderr
    gone = cli("delete", "--id", "cli-one")
    assert gone.returncode == 0, gone.stderr
    with httpx.Client(base_url=d.url, headers=d.headers) as c:
        assert c.get(f"/api/servers/{uuid}/schedules").json()["schedules"] == []


def test_a_changed_definition_changes_its_schedules_at_the_next_boot(clocked, tmp_path):
    server = definition()
    server["schedules"] = [
        {"id": "a", "cron": "0 5 * * *", "action": "restart"},
        {"id": "b", "cron": "0 6 * * *", "action": "stop"},
    ]
    uuid = server["settings"]["uuid"]
    folder = tmp_path / "node"
    d = clocked([server], folder=folder)
    d.add(uuid, {"id": "mine", "cron": "0 7 * * *", "action": "start"})
    d.stop()
    server["schedules"] = [{"id": "a", "cron": "15 5 * * *", "action": "restart"}]  # b gone, a changed

    again = clocked([server], folder=folder)
    removed = again.wait_event(uuid, "schedule.removed")
    assert removed["data"] == {"schedule_id": "b", "source": "definition"}
    with again.client() as c:
        listed = {
            s["id"]: (s["cron"], s["source"]) for s in c.get(f"/api/servers/{uuid}/schedules").json()["schedules"]
        }
    assert listed == {"a": ("15 5 * * *", "definition"), "mine": ("0 7 * * *", "api")}
    added = [e["data"]["schedule_id"] for e in again.events(uuid, "schedule.added")]
    assert added == ["a", "b", "mine", "a"]  # each change once: an unchanged schedule is not recorded again


def test_a_deleted_servers_schedules_end_with_it(clocked, tmp_path):
    server = definition()
    uuid = server["settings"]["uuid"]
    folder = tmp_path / "node"
    d = clocked([], folder=folder)
    with d.client() as c:
        assert c.post("/api/servers", json=server).status_code == 201
    d.add(uuid, {"id": "hourly", "cron": "0 * * * *", "action": "start", "missed": "run_once"})
    with d.client() as c:
        assert c.delete(f"/api/servers/{uuid}").status_code == 204
        assert c.get(f"/api/servers/{uuid}/schedules").status_code == 404
    d.stop()
    d.set_clock(datetime.now(UTC) + timedelta(hours=2))  # a missed run, for a server that is gone

    again = clocked([], folder=folder)
    with again.client() as c:
        types = [e["type"] for e in c.get(f"/api/servers/{uuid}/events", params={"limit": 1000}).json()["events"]]
    after = types[types.index("server.deleted") + 1 :]
    assert not [t for t in after if t.startswith("schedule.")], after
    assert "error" not in again.read_log().lower()
