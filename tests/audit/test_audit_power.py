"""Point-in-time answers checked against a history made by the real power engine (real processes):
start, stop, start, restart, kill, and a start that fails its pre-boot disk check. At every event
and between events, the replayed state is what the daemon itself showed; the log verifies, with
the live views equal to a fresh replay."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.support.daemon import definition
from wingman.engine.audit.timeline import timeline
from wingman.engine.audit.verify import verify
from wingman.engine.servers.replay import state_at
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.statechart import ChartPosition
from wingman.engine.store.points import Point

EXPECTED = [  # (to_state, trigger, cause) of every state change, in order
    ("starting", "start", "operator"),
    ("running", "ready", "process_ready"),  # start
    ("stopping", "stop", "operator"),
    ("offline", "exited", "stopped"),  # stop
    ("starting", "start", "operator"),
    ("running", "ready", "process_ready"),  # start
    ("stopping", "stop", "operator"),
    ("offline", "exited", "stopped"),  # restart: stop
    ("starting", "start", "operator"),
    ("running", "ready", "process_ready"),  #          start
    ("offline", "exited", "killed"),  # kill
    ("starting", "start", "operator"),
    ("offline", "abort", "preboot_failed"),  # failed pre-boot
]
KEYS = ("state", "version", "position", "is_suspended", "operation_in_flight", "last_transition", "configuration")


def live_copy(h, uuid):
    view = h.daemon.registry.get(uuid)
    return view.frozen(h.daemon.registry.chart).as_dict()


def same(answer: dict, live: dict) -> None:
    mine = {
        "state": answer["state"],
        "version": answer["version"],
        "position": answer["position"],
        "is_suspended": answer["suspended"],
        "last_transition": answer["last_transition"],
        "configuration": answer["configuration"],
        "operation_in_flight": (answer["operation_in_flight"] or {}).get("id"),
    }
    assert mine == {k: live[k] for k in KEYS}


async def test_replay_matches_what_the_engine_did(engine_harness):
    d = definition(build={"disk_space": 1})
    uuid = d["settings"]["uuid"]
    async with engine_harness([d]) as h:
        checkpoints = []
        for action in ("start", "stop", "start", "restart", "kill"):
            op = await h.outcome(await h.act(uuid, action))
            assert op.status == "succeeded", (action, op.reason)
            checkpoints.append(live_copy(h, uuid))
        ballast = h.daemon.starter.folder(uuid) / "ballast.bin"
        ballast.write_bytes(b"\0" * (3 * 1024 * 1024))  # over the 1 MiB disk limit: pre-boot fails
        op = await h.outcome(await h.act(uuid, "start"))
        assert op.status == "failed" and "disk" in op.reason
        ballast.unlink()
        checkpoints.append(live_copy(h, uuid))

        engine, cache = h.daemon.db, SnapshotCache(h.daemon.db, every=7)  # small interval: snapshots in play
        events = await h.events(uuid)
        changes = [e for e in events if e.type == "state.changed"]
        assert [(e.data["to_state"], e.data["trigger"], e.data["cause"]) for e in changes] == EXPECTED

        # After each operation, by position and by time exactly on its outcome: what the daemon showed.
        for live in checkpoints:
            same((await state_at(engine, uuid, Point(position=live["position"]), cache)).as_dict(), live)
            at = next(e.recorded_at for e in events if e.position == live["position"])
            same((await state_at(engine, uuid, Point(time=at), cache)).as_dict(), live)

        # At every state change and halfway to the next event: the state it led to, with its cause,
        # its actor and the operation that was in flight.
        for ev in changes:
            later = [e for e in events if e.recorded_at > ev.recorded_at]
            points = [Point(position=ev.position), Point(time=ev.recorded_at)]
            if later:
                points.append(Point(time=ev.recorded_at + (later[0].recorded_at - ev.recorded_at) / 2))
            for point in points:
                a = (await state_at(engine, uuid, point, cache)).as_dict()
                assert a["state"] == ev.data["to_state"]
                lt = a["last_transition"]
                assert (lt["trigger"], lt["cause"], lt["actor"]) == (
                    ev.data["trigger"],
                    ev.data["cause"],
                    ev.metadata["actor"],
                )
                if ev.data["operation_id"] and ev.data["to_state"] != "offline":
                    assert a["operation_in_flight"]["id"] == ev.data["operation_id"]
                    assert a["operation_in_flight"]["action"] in ("start", "stop", "restart", "kill")

        # Just before the first start the server was offline and nothing was in flight.
        first = changes[0]
        before = (
            await state_at(engine, uuid, Point(time=first.recorded_at - timedelta(microseconds=1)), cache)
        ).as_dict()
        assert before["state"] == "offline" and before["last_transition"] is None
        # The failed pre-boot is in the log before the abort, the server still starting at that point.
        check = next(e for e in events if e.type == "preboot.check_failed")
        assert check.data["check"] == "disk"
        assert (await state_at(engine, uuid, Point(position=check.position), cache)).view.state == "starting"

        states = [iv.state async for iv in timeline(engine, uuid)]
        assert states == ["offline"] + [to for to, _, _ in EXPECTED]

        report = await verify(engine, live=h.daemon.registry.views)
        assert report.ok, report.as_dict()
        assert report.live_checked

        # A live view that says something else than the log is named, field by field.
        view = h.daemon.registry.get(uuid)
        wrong = {uuid: replace(view, power=ChartPosition(h.daemon.registry.chart, "running"), operations={})}
        report = await verify(engine, live=wrong)
        assert not report.ok and report.first.check == "live" and report.first.stream_id == uuid
        assert "state: live 'running', replay 'offline'" in report.first.message
