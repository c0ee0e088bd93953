"""The per-server power lock seen from the API: while one action holds it, another with
`wait_seconds: 0` is rejected (the reason names the lock) and one that may wait runs after it.
`kill` does not wait for the lock, and cancels the starts waiting for it."""

from __future__ import annotations

import pytest

from tests.support.daemon import definition
from tests.support.http import operation, power
from tests.support.waiting import eventually

# A stop never ends by itself: only a kill frees the lock, so no timing is involved.
DEAF = definition(env={"IGNORE_STOP": "1"}, stop_timeout=600)
# A boot that takes a while: the start holds the lock during it.
SLOW_BOOT = definition(env={"BOOT_SECONDS": "4"})


@pytest.fixture(scope="module")
def daemon(module_daemon):
    return module_daemon(servers=[DEAF, SLOW_BOOT])


def running(daemon, op_id: str) -> dict:
    """Wait until the operation holds the lock (it recorded power.started)."""
    return eventually(
        lambda: operation(daemon, op_id),
        what=f"operation {op_id} to take the lock",
        until=lambda op: op["status"] == "running",
    )


def test_a_held_lock_rejects_no_wait_and_a_kill_cancels_the_start_waiting_behind_it(daemon):
    uuid = DEAF["settings"]["uuid"]
    assert daemon.wait_operation(power(daemon, uuid, "start")["id"])["status"] == "succeeded"
    stop = power(daemon, uuid, "stop")
    running(daemon, stop["id"])
    daemon.wait_state(uuid, "stopping")

    busy = daemon.wait_operation(power(daemon, uuid, "start", wait_seconds=0)["id"])
    assert busy["status"] == "rejected", busy
    assert "lock" in busy["reason"].lower(), busy["reason"]
    assert [e["type"] for e in busy["events"]] == ["power.requested", "power.rejected"]

    patient = power(daemon, uuid, "start", wait_seconds=300)
    assert patient["wait_seconds"] == 300
    # Still waiting: the stop holds the lock for as long as the server ignores it.
    assert operation(daemon, patient["id"])["status"] == "queued"
    assert operation(daemon, stop["id"])["status"] == "running"

    # kill does not wait for the lock: it ends the stop. The start queued behind it was asked
    # for before the kill, so it must not bring the server back: it is cancelled by the kill.
    kill = daemon.wait_operation(power(daemon, uuid, "kill", wait_seconds=0)["id"])
    assert kill["status"] == "succeeded", kill
    started = [e for e in kill["events"] if e["type"] == "power.started"]
    assert started and started[0]["data"]["lock_acquired"] is False
    assert daemon.wait_operation(stop["id"])["status"] == "succeeded"
    after = daemon.wait_operation(patient["id"])
    assert after["status"] == "cancelled", after
    cancelled = [e for e in after["events"] if e["type"] == "power.cancelled"]
    assert cancelled[0]["data"]["cancelled_by"] == kill["id"]
    daemon.wait_state(uuid, "offline")

    # A start asked for after the kill runs as usual once the lock is free.
    again = daemon.wait_operation(power(daemon, uuid, "start", wait_seconds=300)["id"])
    assert again["status"] == "succeeded", again
    assert daemon.wait_operation(power(daemon, uuid, "kill")["id"])["status"] == "succeeded"
    daemon.wait_state(uuid, "offline")


def test_a_booting_server_holds_the_lock(daemon):
    uuid = SLOW_BOOT["settings"]["uuid"]
    start = power(daemon, uuid, "start")
    running(daemon, start["id"])

    busy = daemon.wait_operation(power(daemon, uuid, "stop", wait_seconds=0)["id"])
    assert busy["status"] == "rejected", busy
    assert "lock" in busy["reason"].lower(), busy["reason"]

    stop = power(daemon, uuid, "stop", wait_seconds=120)
    assert daemon.wait_operation(start["id"])["status"] == "succeeded"
    assert daemon.wait_operation(stop["id"])["status"] == "succeeded"
    # The stop ran after the start finished: it saw a running server and took it down.
    changes = [
        (e["data"]["from_state"], e["data"]["to_state"])
        for e in operation(daemon, stop["id"])["events"]
        if e["type"] == "state.changed"
    ]
    assert changes == [("running", "stopping"), ("stopping", "offline")]
    daemon.wait_state(uuid, "offline")


def test_a_wait_that_runs_out_is_rejected_with_the_wait_in_the_reason(daemon):
    uuid = DEAF["settings"]["uuid"]
    assert daemon.wait_operation(power(daemon, uuid, "start")["id"])["status"] == "succeeded"
    stop = power(daemon, uuid, "stop")
    running(daemon, stop["id"])
    short = daemon.wait_operation(power(daemon, uuid, "restart", wait_seconds=1)["id"])
    assert short["status"] == "rejected", short
    assert "lock" in short["reason"].lower() and "1 s" in short["reason"], short["reason"]
    assert daemon.wait_operation(power(daemon, uuid, "kill")["id"])["status"] == "succeeded"
    assert daemon.wait_operation(stop["id"])["status"] == "succeeded"
    daemon.wait_state(uuid, "offline")
