"""An exit seen while the event store cannot commit (issue 24, section 4).

A server whose process ends by itself while the store's disk is full stays `running` (the state
is what the log says) until the exit is committed. Meanwhile `GET /api/servers/{uuid}` says an
exit is waiting (`exit_pending`, with the moment the daemon saw it), and once space is back the
committed `process.exited` carries that moment, earlier than its own commit, which is what the
audit's timeline and the crash's uptime go by.

A real daemon, a real game server process and a real full disk: the store lives on a 2 MiB tmpfs
(mounting needs root, as tests/store/test_http_store_full.py does; if it fails, the test fails).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from tests.support.daemon import REPO, definition, kill_leftovers
from tests.support.full_disk import fill
from tests.support.http import processes_under
from tests.support.waiting import eventually, eventually_async
from wingman.engine.power.crashes import CRASH_ACTOR

STUCK = 2.5  # seconds the store cannot commit after the exit, in the crash-timing test


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_an_exit_seen_while_the_disk_is_full_is_pending_then_recorded_with_its_moment(
    tiny_disk,
    tmp_path,
    daemon_process,
):
    server = definition()
    uuid = server["settings"]["uuid"]
    volumes = tmp_path / "volumes"
    d = daemon_process(servers=[server], system={"root_directory": str(tiny_disk), "data": str(volumes)})
    try:
        with d.client() as c:
            resp = c.post(f"/api/servers/{uuid}/power", json={"action": "start"})
            assert resp.status_code == 202, resp.text
            assert d.wait_operation(resp.json()["id"])["status"] == "succeeded", d.read_log()[-3000:]
            body = c.get(f"/api/servers/{uuid}").json()
            assert body["state"] == "running" and body["exit_pending"] is None, body

            filler = fill(tiny_disk)
            before_exit = datetime.now(UTC)
            # The game server crashes on its own (a console command writes nothing to the log).
            assert c.post(f"/api/servers/{uuid}/commands", json={"commands": ["crash"]}).status_code == 204
            body = eventually(
                lambda: c.get(f"/api/servers/{uuid}").json(),
                what="the exit to be shown as pending",
                until=lambda b: b["exit_pending"],
            )
            shown = datetime.now(UTC)
            assert not processes_under(volumes), "pending means the process is gone"
            pending = body["exit_pending"]
            assert body["state"] == "running", "the log has no exit yet: the state says what the log says"
            assert pending["exit_code"] == 139 and pending["oom_killed"] is False, pending
            observed = at(pending["observed_at"])
            assert before_exit <= observed <= shown, (before_exit, observed, shown)

            # The daemon tried to commit it and could not; it is still pending, the state unchanged.
            eventually(lambda: "event store unavailable" in d.read_log(), what="a failed commit of the exit")
            body = c.get(f"/api/servers/{uuid}").json()
            assert (body["state"], body["exit_pending"]) == ("running", pending), body

            space_back = datetime.now(UTC)
            filler.unlink()
            body = eventually(
                lambda: c.get(f"/api/servers/{uuid}").json(),
                timeout=30,
                what="the exit to be committed",
                until=lambda b: b["state"] == "offline",
            )
            assert body["exit_pending"] is None, body

            events = c.get(f"/api/servers/{uuid}/events", params={"limit": 1000}).json()["events"]
            exits = [e for e in events if e["type"] == "process.exited"]
            assert len(exits) == 1, exits
            [exited] = exits
            assert exited["data"]["observed_at"] == pending["observed_at"] and exited["data"]["exit_code"] == 139
            committed = at(exited["recorded_at"])
            assert observed < space_back <= committed, "the event keeps the moment of the exit, not of its commit"

            # The crash's uptime runs to the exit, not to its commit.
            ready = next(e for e in events if e["type"] == "state.changed" and e["data"]["trigger"] == "ready")
            [crash] = [e for e in events if e["type"] == "server.crashed"]
            assert crash["data"]["uptime_seconds"] == round((observed - at(ready["recorded_at"])).total_seconds(), 3)

        # The audit's timeline: `running` ended when the process did, and `offline` began then.
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "wingman.api.cli",
                "audit",
                "timeline",
                uuid,
                "--database",
                str(tiny_disk / "wingman.db"),
                "--format",
                "json",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("WINGMAN_")},
        )
        assert out.returncode == 0, out.stderr
        intervals = json.loads(out.stdout)
        running = [iv for iv in intervals if iv["state"] == "running"]
        assert len(running) == 1 and at(running[0]["to"]) == observed, intervals
        assert at(intervals[-1]["from"]) == observed and intervals[-1]["state"] == "offline", intervals
    finally:
        d.stop()  # before the tmpfs is unmounted
        kill_leftovers(volumes)  # its data folder is outside the daemon's: the fixture's sweep misses it


async def test_crashes_are_timed_by_their_exits_not_by_their_late_commits(engine_harness):
    """Wings' crash timeout measures the time since the last crash. When the second exit waits
    seconds for the store (another writer holds SQLite's lock), that time runs to the exit as the
    daemon saw it, not to its commit: a store that was stuck must not bunch crashes together."""
    d = definition(restart_policy={"policy": "on-failure", "backoff_initial": 0.1, "backoff_max": 0.4})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d], system={"crash_detection": {"timeout": 600}}) as h:
        assert (await h.outcome(await h.act(uuid, "start"))).status == "succeeded"
        await h.processes.send_command(uuid, "crash")
        first = await h.until_event(uuid, lambda e: e.type == "crash.decided")
        assert first.data["restart"] is True, first.data
        await h.until_event(
            uuid,
            lambda e: (
                e.type == "state.changed" and e.data["trigger"] == "ready" and e.metadata.get("actor") == CRASH_ACTOR
            ),
        )

        blocker = sqlite3.connect(h.daemon.db.url.database, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the second exit's commit waits behind this
        try:
            await h.processes.send_command(uuid, "crash")

            pending = await eventually_async(lambda: h.processes.exit_pending(uuid), 60, "the exit seen, pending")
            assert h.state(uuid) == "running" and pending["exit_code"] == 139
            # Deliberate: the store stays stuck for STUCK s after the exit, the experiment, not a wait.
            stuck_until = at(pending["observed_at"]) + timedelta(seconds=STUCK)
            await asyncio.sleep(max(0.0, (stuck_until - datetime.now(UTC)).total_seconds()))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        refused = await h.until_event(uuid, lambda e: e.type == "crash.decided" and e.version > first.version)
        assert h.processes.exit_pending(uuid) is None

        events = await h.events(uuid)
        exits = [e for e in events if e.type == "process.exited"]
        crashes = [e for e in events if e.type == "server.crashed"]
        assert len(exits) == len(crashes) == 2 and exits[1].data["observed_at"] == pending["observed_at"]
        between_exits = (at(exits[1].data["observed_at"]) - at(exits[0].data["observed_at"])).total_seconds()
        between_commits = (crashes[1].recorded_at - crashes[0].recorded_at).total_seconds()
        assert between_commits >= between_exits + STUCK - 0.5, "the second crash was committed late"
        assert refused.data["restart"] is False
        assert refused.data["reason"].startswith(f"not restarting: the last crash was {between_exits:.0f} s ago"), (
            refused.data["reason"],
            between_exits,
            between_commits,
        )
