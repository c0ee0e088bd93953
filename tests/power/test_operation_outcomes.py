"""Every accepted operation gets exactly one outcome, under any interleaving of starts and kills,
and verification against the live daemon names an operation that was dropped without one."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from tests.conftest import TEST_META
from tests.support.daemon import definition
from tests.support.http import processes_under
from tests.support.waiting import eventually
from wingman.engine.audit.verify import verify
from wingman.engine.events import Metadata, NewEvent, PowerRequested
from wingman.engine.statechart import Trigger

SLEEPER = dict(invocation="exec sleep 1000", done=(), stop={"type": "signal", "value": "SIGTERM"})
SERVERS, CLIENTS, PAIRS = 10, 40, 800  # bounded for CI; the load was 20 / 40 / 2,000


def test_start_kill_storm_leaves_every_operation_with_one_outcome(daemon_process):
    servers = [definition(**SLEEPER) for _ in range(SERVERS)]
    ids = [s["settings"]["uuid"] for s in servers]
    d = daemon_process(servers=servers)
    accepted: list[str] = []

    async def client(n: int) -> None:
        rng = random.Random(n)
        async with httpx.AsyncClient(base_url=d.url, headers=d.headers, timeout=60) as c:
            for _ in range(PAIRS // CLIENTS):
                uuid = rng.choice(ids)
                for action in ("start", "kill"):
                    resp = await c.post(f"/api/servers/{uuid}/power", json={"action": action, "wait_seconds": 0})
                    assert resp.status_code == 202, resp.text
                    accepted.append(resp.json()["id"])

    async def storm() -> None:
        await asyncio.gather(*(client(n) for n in range(CLIENTS)))

    asyncio.run(storm())
    assert len(accepted) == 2 * (PAIRS // CLIENTS) * CLIENTS

    with d.client() as c:
        report = eventually(
            lambda: c.get("/api/audit/verify").json(),
            timeout=120,
            what="every operation to have its outcome",
            until=lambda report: report["open_operations"] == 0,
        )
        assert report["ok"], report["first_problem"]
        statuses = {}
        for op_id in accepted:
            body = c.get(f"/api/operations/{op_id}").json()
            outcomes = [
                e
                for e in body["events"]
                if e["type"]
                in ("power.succeeded", "power.failed", "power.rejected", "power.cancelled", "power.interrupted")
            ]
            assert len(outcomes) == 1, body
            statuses[body["status"]] = statuses.get(body["status"], 0) + 1
        # The last word on every server was a kill: every one is down, with no process left.
        for uuid in ids:
            assert c.get(f"/api/servers/{uuid}").json()["state"] == "offline"
            assert processes_under(d.folder / "var" / "volumes" / uuid) == []
    assert statuses.get("succeeded", 0) > 0 and statuses.get("cancelled", 0) > 0, statuses


async def test_a_kill_landing_while_the_start_records_power_started(engine_harness, monkeypatch):
    """The sharp interleaving: the kill cancels the start while `power.started` is being
    committed. The start still gets its one outcome (cancelled by the kill)."""
    server = definition(**SLEEPER)
    uuid = server["settings"]["uuid"]
    async with engine_harness([server]) as h:
        store = h.daemon.store
        original, parked, release = store.append, asyncio.Event(), asyncio.Event()

        async def append_then_park(stream, events, expected_version=-1):
            committing = asyncio.ensure_future(original(stream, events, expected_version))
            events = list(events)
            if any(e.type == "power.started" and e.data["action"] == "start" for e in events):
                parked.set()
                await release.wait()  # the start's task sits here, its event on its way to the log
            return await committing

        with monkeypatch.context() as stand_in:
            stand_in.setattr(store, "append", append_then_park)
            start = await h.act(uuid, "start")
            await asyncio.wait_for(parked.wait(), 30)
            kill = await h.act(uuid, "kill")
            await h.outcome(kill)
            release.set()
            await h.outcome(start)
        assert (start.status, kill.status) == ("cancelled", "succeeded")
        types = [e.type for e in await h.events(uuid) if e.metadata.get("operation_id") == start.id]
        assert types == ["power.requested", "power.started", "power.cancelled"]
        assert h.state(uuid) == "offline"
        report = await verify(h.daemon.db, live=h.daemon.registry.views, in_hand=h.daemon.power.in_hand)
        assert report.ok and report.open_operations == 0, report.as_dict()


async def test_a_kill_cancels_a_start_waiting_behind_a_stop(engine_harness):
    """A stop holds the lock (TERM is ignored, so it waits); a start queues behind it; then a
    kill: the stop ends (the process is gone), and the start that gets the lock next is cancelled
    instead of bringing the server back."""
    server = definition(
        invocation="trap '' TERM; exec sleep 1000",
        done=(),
        stop={"type": "signal", "value": "SIGTERM"},
        stop_timeout=120,
    )
    uuid = server["settings"]["uuid"]
    async with engine_harness([server]) as h:
        await h.outcome(await h.act(uuid, "start"))
        stop = await h.act(uuid, "stop")
        await h.wait_state(uuid, "stopping")
        start = await h.act(uuid, "start", wait=60)
        kill = await h.act(uuid, "kill")
        for op in (kill, stop, start):
            await h.outcome(op)
        assert (kill.status, stop.status, start.status) == ("succeeded", "succeeded", "cancelled")
        assert "waiting for the lock" in start.reason
        assert h.state(uuid) == "offline"
        assert processes_under(h.config.data_directory / uuid) == []


async def test_verify_names_an_operation_the_daemon_dropped(engine_harness):
    server = definition(**SLEEPER)
    uuid = server["settings"]["uuid"]
    async with engine_harness([server]) as h:
        # An operation recorded as requested that no task runs: what the lost operations looked like.
        meta = Metadata(actor="test", channel="test", operation_id="dropped-op")
        await h.daemon.store.append(
            uuid, [NewEvent.of(PowerRequested(operation_id="dropped-op", action="start", wait_seconds=30), meta)]
        )
        report = await verify(h.daemon.db, live=h.daemon.registry.views, in_hand=h.daemon.power.in_hand)
        assert not report.ok
        assert report.first.check == "operation" and "dropped-op" in report.first.message
        assert "not running it" in report.first.message
        # Read from the file alone, the same log only says the operation is open.
        offline = await verify(h.daemon.db)
        assert offline.ok and offline.open_operations == 1
        assert any("no outcome yet" in w for w in offline.warnings)


async def test_verify_does_not_flag_an_operation_in_flight(engine_harness):
    server = definition(
        invocation="trap '' TERM; exec sleep 1000",
        done=(),
        stop={"type": "signal", "value": "SIGTERM"},
        stop_timeout=120,
    )
    uuid = server["settings"]["uuid"]
    async with engine_harness([server]) as h:
        await h.outcome(await h.act(uuid, "start"))
        stop = await h.act(uuid, "stop")  # TERM is ignored: the stop waits for its timeout
        await h.wait_state(uuid, "stopping")
        report = await verify(h.daemon.db, live=h.daemon.registry.views, in_hand=h.daemon.power.in_hand)
        assert report.ok and report.open_operations == 1, report.as_dict()
        await h.outcome(await h.act(uuid, "kill"))
        await h.outcome(stop)
        assert stop.status == "succeeded"


async def test_a_kill_with_nothing_to_do_is_settled_in_its_request_commit(engine_harness):
    """An offline server, its lock idle: the kill's request, start and outcome are one commit,
    and the caller's operation is already succeeded. A second kill racing the first one's commit
    finds the lock held and goes the long way; both end with one outcome."""
    server = definition(**SLEEPER)
    uuid = server["settings"]["uuid"]
    async with engine_harness([server]) as h:
        store = h.daemon.store
        commits = store.commits
        kill = await h.act(uuid, "kill")
        assert store.commits == commits + 1
        assert kill.status == "succeeded" and not h.daemon.power.in_hand(kill.id)
        events = [e for e in await h.events(uuid) if e.metadata.get("operation_id") == kill.id]
        assert [e.type for e in events] == ["power.requested", "power.started", "power.succeeded"]
        assert events[1].data["lock_acquired"] is True
        assert events[2].data["detail"] == "the server was not running"

        commits = store.commits
        first, second = await asyncio.gather(h.act(uuid, "kill"), h.act(uuid, "kill"))
        assert first.status == "succeeded" and second.status != "succeeded"  # the second is in flight
        await h.outcome(second)
        assert second.status == "succeeded" and store.commits >= commits + 3
        for op in (first, second):
            types = [e.type for e in await h.events(uuid) if e.metadata.get("operation_id") == op.id]
            assert types == ["power.requested", "power.started", "power.succeeded"]
        report = await verify(h.daemon.db, live=h.daemon.registry.views, in_hand=h.daemon.power.in_hand)
        assert report.ok and report.open_operations == 0, report.as_dict()


async def test_a_cancelled_state_change_holds_the_ordering_until_it_is_committed(engine_harness, monkeypatch):
    """A kill cancels a start in the middle of its `ready` change, whose append is already on its
    way to the log. The process's exit, checked next, must see `running`, not the `starting` the
    server was in before that append landed: the log's state changes stay one chain."""
    server = definition(**SLEEPER)
    uuid = server["settings"]["uuid"]
    async with engine_harness([server]) as h:
        journal, store = h.daemon.journal, h.daemon.store
        await journal.transition(uuid, Trigger.START, "operator", TEST_META)
        original, parked, release, exit_queued = store.append, asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def park_ready_then_append(stream, events, expected_version=-1):
            events = list(events)
            triggers = {e.data.get("trigger") for e in events if e.type == "state.changed"}
            if "exited" in triggers:
                exit_queued.set()
            if "ready" not in triggers:
                return await original(stream, events, expected_version)
            parked.set()

            async def later():
                await release.wait()
                return await original(stream, events, expected_version)

            return await asyncio.shield(asyncio.ensure_future(later()))  # in flight, whatever its caller does

        with monkeypatch.context() as stand_in:
            stand_in.setattr(store, "append", park_ready_then_append)
            ready = asyncio.create_task(journal.transition_if_allowed(uuid, Trigger.READY, "process_ready", TEST_META))
            await asyncio.wait_for(parked.wait(), 30)
            ready.cancel()  # the kill
            exited = asyncio.create_task(journal.transition_if_allowed(uuid, Trigger.EXITED, "killed", TEST_META))
            for _ in range(3):
                # Deliberate: three turns of the loop, so the cancellation reaches the `ready` change.
                await asyncio.sleep(0)
            if ready.done():  # it let go of the ordering at once: the exit goes ahead of its append
                await asyncio.wait_for(exit_queued.wait(), 30)
            release.set()
            assert await asyncio.wait_for(exited, 30) is True
            with pytest.raises(asyncio.CancelledError):
                await ready
        changes = [e.data for e in await h.events(uuid) if e.type == "state.changed"]
        assert [(c["from_state"], c["to_state"]) for c in changes] == [
            ("offline", "starting"),
            ("starting", "running"),
            ("running", "offline"),
        ]
        assert h.state(uuid) == "offline"
