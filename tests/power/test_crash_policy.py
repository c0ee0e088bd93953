"""Crash handling with real processes: what counts as a crash, what each restart policy does,
the backoff, the crash-loop limit, Wings' crash timeout, an operator cancelling a pending
restart, and decisions that survive a daemon restart. Intervals are short; waits are on events."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta

from tests.support.daemon import definition
from tests.support.waiting import eventually_async
from wingman.engine.power.crashes import CRASH_ACTOR

NO_TIMEOUT = {"crash_detection": {"timeout": 0}}  # Wings' 60 s guard off, so crashes can come quickly
FAST = {"backoff_initial": 0.1, "backoff_max": 0.4}


def policy(name: str = "on-failure", **kw) -> dict:
    return {"policy": name, **FAST, **kw}


async def decisions(h, uuid: str) -> list:
    return [e for e in await h.events(uuid) if e.type == "crash.decided"]


async def crash(h, uuid: str, nth: int = 1):
    """Make the running demo server crash (exit 139); returns the nth crash.decided."""
    await h.processes.send_command(uuid, "crash")
    return await until_nth(h, uuid, "crash.decided", nth)


async def until_nth(h, uuid: str, kind: str, nth: int, timeout: float = 60):
    async def nth_one():
        found = [e for e in await h.events(uuid) if e.type == kind]
        return found[nth - 1] if len(found) >= nth else None

    return await h.after_commits(nth_one, timeout, f"{kind} number {nth} of server {uuid}")


async def restarted(h, uuid: str, nth: int = 1):
    """The nth automatic restart, once it has its outcome."""

    async def nth_request():
        requests = [
            e for e in await h.events(uuid) if e.type == "power.requested" and e.metadata.get("actor") == CRASH_ACTOR
        ]
        return requests[nth - 1] if len(requests) >= nth else None

    request = await h.after_commits(nth_request, 60, f"automatic restart number {nth} of server {uuid}")
    op = h.daemon.registry.operation_in_memory(request.data["operation_id"])
    return request, await h.outcome(op)


async def test_a_crash_is_recorded_with_its_exit_and_last_lines_and_restarted(engine_harness):
    d = definition(restart_policy=policy())
    uuid = d["settings"]["uuid"]
    async with engine_harness([d], system=NO_TIMEOUT) as h:
        await h.outcome(await h.act(uuid, "start"))
        heard = []
        h.processes.console(uuid).listen(lambda kind, text: heard.append((kind, text)))
        decided = await crash(h, uuid)
        crashed = await h.until_event(uuid, lambda e: e.type == "server.crashed")
        assert (crashed.data["exit_code"], crashed.data["signal"]) == (139, "SIGSEGV")
        assert "Segmentation fault (simulated)" in crashed.data["last_lines"]
        assert crashed.data["uptime_seconds"] > 0
        assert decided.data == {
            **decided.data,
            "restart": True,
            "delay_seconds": 0.1,
            "crash_event_id": crashed.event_id,
        }
        assert decided.data["reason"] == "restarting in 0.1 s, crash 1 of 5 in 10 min"
        request, op = await restarted(h, uuid)
        assert (request.data["action"], request.metadata["cause"]) == ("restart", "crash")
        assert request.metadata["crash_event_id"] == crashed.event_id
        assert op.status == "succeeded" and h.state(uuid) == "running"
        notes = [text for kind, text in heard if kind == "daemon"]
        assert "---------- Detected server process in a crashed state! ----------" in notes
        assert "Restarting in 0.1 s, crash 1 of 5 in 10 min." in notes
        await h.outcome(await h.act(uuid, "kill"))


async def test_the_default_policy_restarts_a_crashed_server(engine_harness):
    d = definition(restart_policy=None)  # no restart_policy key: the product's default
    uuid = d["settings"]["uuid"]
    async with engine_harness([d], system=NO_TIMEOUT) as h:
        await h.outcome(await h.act(uuid, "start"))
        decided = await crash(h, uuid)
        assert decided.data["restart"] and decided.data["reason"] == "restarting in 2 s, crash 1 of 5 in 10 min"
        _, op = await restarted(h, uuid)
        assert op.status == "succeeded"
        await h.outcome(await h.act(uuid, "kill"))


async def test_policy_no_and_disabled_detection_record_the_crash_and_do_not_restart(engine_harness):
    no = definition(restart_policy={"policy": "no"})
    off = definition(restart_policy=policy(), crash_detection_enabled=False)
    async with engine_harness([no, off], system=NO_TIMEOUT) as h:
        for doc, reason in (
            (no, "not restarting: the restart policy is no"),
            (off, "not restarting: crash detection is disabled for this server"),
        ):
            uuid = doc["settings"]["uuid"]
            await h.outcome(await h.act(uuid, "start"))
            decided = await crash(h, uuid)
            assert (decided.data["restart"], decided.data["reason"]) == (False, reason)
            assert h.state(uuid) == "offline" and not h.daemon.crashes.pending(uuid)
            assert "server.crashed" in await h.types(uuid)


async def test_a_clean_exit_is_a_crash_only_when_the_node_says_so(engine_harness):
    counted, ignored = definition(restart_policy=policy()), definition(restart_policy=policy())
    async with engine_harness([counted], system=NO_TIMEOUT) as h:
        uuid = counted["settings"]["uuid"]
        await h.outcome(await h.act(uuid, "start"))
        await h.processes.send_command(uuid, "stop")  # the server exits 0 with no power stop
        decided = await until_nth(h, uuid, "crash.decided", 1)
        assert decided.data["restart"] is True  # detect_clean_exit_as_crash: true (Wings' default)
        await restarted(h, uuid)
        await h.outcome(await h.act(uuid, "kill"))
    clean_is_fine = {"crash_detection": {"timeout": 0, "detect_clean_exit_as_crash": False}}
    async with engine_harness([ignored], system=clean_is_fine) as h:
        uuid = ignored["settings"]["uuid"]
        await h.outcome(await h.act(uuid, "start"))
        await h.processes.send_command(uuid, "stop")
        decided = await until_nth(h, uuid, "crash.decided", 1)
        assert decided.data["restart"] is False and "exited cleanly" in decided.data["reason"]
        # A real crash of the same server still counts.
        await h.outcome(await h.act(uuid, "start"))
        assert (await crash(h, uuid, nth=2)).data["restart"] is True
        await restarted(h, uuid)
        await h.outcome(await h.act(uuid, "kill"))


async def test_backoff_doubles_up_to_its_cap_and_the_loop_limit_gives_up(engine_harness):
    d = definition(restart_policy=policy(max_restarts=4))
    uuid = d["settings"]["uuid"]
    async with engine_harness([d], system=NO_TIMEOUT) as h:
        await h.outcome(await h.act(uuid, "start"))
        delays = []
        for nth in range(1, 5):
            decided = await crash(h, uuid, nth)
            assert (
                decided.data["reason"]
                == f"restarting in {decided.data['delay_seconds']:g} s, crash {nth} of 4 in 10 min"
            )
            delays.append(decided.data["delay_seconds"])
            request, op = await restarted(h, uuid, nth)
            # Backoff is a lower bound: the restart is requested no sooner than the delay.
            assert (request.recorded_at - decided.recorded_at).total_seconds() >= decided.data["delay_seconds"]
            assert op.status == "succeeded"
        assert delays == [0.1, 0.2, 0.4, 0.4]
        given_up = await crash(h, uuid, nth=5)
        assert given_up.data["restart"] is False
        assert given_up.data["reason"] == "not restarting: 5 crashes in 10 min (restart_policy.max_restarts is 4)"
        assert h.state(uuid) == "offline" and not h.daemon.crashes.pending(uuid)


async def test_a_healthy_uptime_starts_the_count_afresh(engine_harness):
    d = definition(restart_policy=policy(max_restarts=1, reset_after=1))
    uuid = d["settings"]["uuid"]
    async with engine_harness([d], system=NO_TIMEOUT) as h:
        await h.outcome(await h.act(uuid, "start"))
        assert (await crash(h, uuid)).data["restart"] is True
        await restarted(h, uuid)
        ready = [e for e in await h.events(uuid) if e.type == "state.changed" and e.data["to_state"] == "running"][-1]
        # Deliberate: what is under test is a duration, so let it run for reset_after (1 s).
        await asyncio.sleep(max(0.0, (ready.recorded_at + timedelta(seconds=1.05) - datetime.now(UTC)).total_seconds()))
        second = await crash(h, uuid, nth=2)  # crash 1 again, not 2 of 1
        crashed = [e for e in await h.events(uuid) if e.type == "server.crashed"][-1]
        assert crashed.data["streak_reset"] is True
        assert second.data["restart"] is True and "crash 1 of 1" in second.data["reason"]
        await restarted(h, uuid, nth=2)
        await h.outcome(await h.act(uuid, "kill"))


async def test_wings_crash_timeout_refuses_a_restart_right_after_a_crash(engine_harness):
    d = definition(restart_policy=policy())
    uuid = d["settings"]["uuid"]
    async with engine_harness([d], system={"crash_detection": {"timeout": 60}}) as h:
        await h.outcome(await h.act(uuid, "start"))
        assert (await crash(h, uuid)).data["restart"] is True
        await restarted(h, uuid)
        refused = await crash(h, uuid, nth=2)
        assert refused.data["restart"] is False
        assert refused.data["reason"].startswith("not restarting: the last crash was ")
        assert refused.data["reason"].endswith("s ago, less than crash_detection.timeout (60 s)")


async def test_an_operators_stop_cancels_a_pending_restart(engine_harness):
    d = definition(restart_policy=policy(backoff_initial=3600, backoff_max=3600))
    uuid = d["settings"]["uuid"]
    async with engine_harness([d], system=NO_TIMEOUT) as h:
        await h.outcome(await h.act(uuid, "start"))
        assert (await crash(h, uuid)).data["restart"] is True
        assert h.daemon.crashes.pending(uuid) and h.daemon.registry.get(uuid).pending_restart
        stop = await h.outcome(await h.act(uuid, "stop"))
        cancelled = (await decisions(h, uuid))[-1]
        assert (cancelled.data["restart"], cancelled.data["reason"]) == (
            False,
            "not restarting: an operator stopped it",
        )
        # In the same commit as the stop's request: no moment where the log has one without the other.
        request = [e for e in await h.events(uuid) if e.metadata.get("operation_id") == stop.id][0]
        assert request.type == "power.requested" and cancelled.version == request.version + 1
        assert cancelled.metadata["operation_id"] == stop.id
        assert not h.daemon.crashes.pending(uuid) and h.daemon.registry.get(uuid).pending_restart is None
        assert h.state(uuid) == "offline"


async def test_a_restart_pending_when_the_daemon_stops_is_resumed_by_the_next(engine_harness):
    d = definition(restart_policy=policy(backoff_initial=1, backoff_max=1))
    uuid = d["settings"]["uuid"]
    first = engine_harness([d], system=NO_TIMEOUT)
    await first.daemon.start()
    await first.daemon.recovery.done.wait()
    await first.outcome(await first.act(uuid, "start"))
    assert (await crash(first, uuid)).data["restart"] is True
    await first.daemon.stop()  # within the 1 s backoff: the restart was not requested yet
    assert not [
        e for e in await first.events(uuid) if e.metadata.get("actor") == CRASH_ACTOR and e.type == "power.requested"
    ]
    async with engine_harness([d], system=NO_TIMEOUT) as second:
        _, op = await restarted(second, uuid)
        assert op.status == "succeeded" and second.state(uuid) == "running"
        await second.outcome(await second.act(uuid, "kill"))


async def test_policies_at_daemon_start(engine_harness):
    """Docker's semantics: `always` brings a server back at daemon start even after an operator
    stopped it; `unless-stopped` does not; a server found gone is a crash to on-failure."""
    always = definition(restart_policy=policy("always"))
    unless = definition(restart_policy=policy("unless-stopped"))
    gone = definition(restart_policy=policy("on-failure"))
    ids = {name: doc["settings"]["uuid"] for name, doc in (("always", always), ("unless", unless), ("gone", gone))}
    first = engine_harness([always, unless, gone], system=NO_TIMEOUT)
    await first.daemon.start()
    await first.daemon.recovery.done.wait()
    for uuid in ids.values():
        await first.outcome(await first.act(uuid, "start"))
    for name in ("always", "unless"):
        await first.outcome(await first.act(ids[name], "stop"))
    pid = [e for e in await first.events(ids["gone"]) if e.type == "process.started"][-1].data["pid"]
    await first.daemon.store.close()  # the daemon dies ...
    await first.daemon.db.dispose()
    os.killpg(pid, signal.SIGKILL)  # ... and, while it is down, so does one of its servers

    def dead() -> bool:
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True

    await eventually_async(dead, 30, f"the killed server's process {pid} to end")
    async with engine_harness([always, unless, gone], system=NO_TIMEOUT) as second:
        _, op = await restarted(second, ids["always"])
        assert op.status == "succeeded"
        _, op = await restarted(second, ids["gone"])
        assert op.status == "succeeded"
        crashed = [e for e in await second.events(ids["gone"]) if e.type == "server.crashed"][-1]
        assert crashed.metadata["cause"] == "boot_recovery"
        assert second.state(ids["unless"]) == "offline"
        assert not [e for e in await second.events(ids["unless"]) if e.type == "crash.decided"]
        for uuid in (ids["always"], ids["gone"]):
            await second.outcome(await second.act(uuid, "kill"))
