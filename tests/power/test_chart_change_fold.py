"""The log's timeline of statecharts, on a real SQLite log through the store: each transition is
judged by the chart in force when it was recorded (the same transition legal before a change and
refused after it), a replay snapshot is used only under the charts it was folded with, and a
server is re-placed only out of a state the chart in force lacks."""

from __future__ import annotations

import yaml

from tests.support.daemon import opened_store
from wingman.engine.audit.verify import verify
from wingman.engine.charts.adoption import adopt
from wingman.engine.charts.log import chart_in_force
from wingman.engine.events import Metadata, NewEvent, ServerRegistered, StateChanged
from wingman.engine.servers.replay import state_at
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.statechart import STATECHART_PATH, parse_statechart
from wingman.engine.store.points import Point

META = Metadata(actor="test", channel="test")
SERVER = "6f1c2f6e-0000-4000-8000-000000000001"


def narrower() -> str:
    """The packaged chart without `exited` from `starting`."""
    doc = yaml.safe_load(STATECHART_PATH.read_text())
    for t in doc["transitions"]:
        if t["trigger"] == "exited":
            t["source"] = [s for s in t["source"] if s != "starting"]
    return yaml.safe_dump(doc)


async def change(store, frm: str, to: str, trigger: str, cause: str = "operator") -> int:
    [ev] = await store.append(
        SERVER, [NewEvent.of(StateChanged(from_state=frm, to_state=to, trigger=trigger, cause=cause), META)]
    )
    return ev.position


async def test_each_transition_is_judged_by_the_chart_in_force_when_it_was_recorded(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'log.db'}"
    async with opened_store(url) as store:
        packaged = parse_statechart(STATECHART_PATH.read_text())
        await adopt(store, packaged)
        await store.append(SERVER, [NewEvent.of(ServerRegistered(definition={"settings": {"uuid": SERVER}}), META)])
        await change(store, "offline", "starting", "start")
        before = await change(store, "starting", "offline", "exited")  # legal under the packaged chart
        cache = SnapshotCache(store.engine, every=2)
        assert (await state_at(store.engine, SERVER, Point(position=before), cache)).view.state == "offline"
        written = await _snapshot_fingerprints(store.engine)

        new = parse_statechart(narrower())
        adopted = await adopt(store, new)  # every server in one of its states: no flag needed
        assert adopted.digest == new.digest and adopted.since > before
        assert adopted.in_force_at(before).digest == packaged.digest
        await change(store, "offline", "starting", "start")
        after = await change(store, "starting", "offline", "exited")  # the same transition, now refused

        report = await verify(store.engine)
        assert [(f.position, f.check) for f in report.findings] == [(after, "transition")], report.as_dict()
        # The snapshots folded before the change are still this timeline's (the charts before them
        # did not change), and a cache that believes another chart was in force ignores them.
        assert await _snapshot_fingerprints(store.engine) == written
        same = SnapshotCache(store.engine, every=2, write=False)
        assert (await same.best(SERVER, before)) is not None
        other = SnapshotCache(store.engine, every=2, write=False, chart=new)  # as if `new` had always been
        assert (await other.best(SERVER, before)) is None
        assert (await chart_in_force(store.engine)).digest == new.digest


async def test_a_server_is_replaced_only_out_of_a_state_the_chart_lacks(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'log.db'}"
    async with opened_store(url) as store:
        await adopt(store, parse_statechart(STATECHART_PATH.read_text()))
        await store.append(SERVER, [NewEvent.of(ServerRegistered(definition={"settings": {"uuid": SERVER}}), META)])
        # `offline` is a state of the chart in force: a re-placement out of it is an illegal change.
        moved = await change(store, "offline", "starting", "statechart_change", cause="statechart_change")
        report = await verify(store.engine)
        assert [(f.position, f.check) for f in report.findings] == [(moved, "transition")], report.as_dict()


async def _snapshot_fingerprints(engine) -> dict[int, str]:
    from sqlalchemy import select

    from wingman.engine.store.schema import snapshots

    async with engine.connect() as conn:
        return {
            r.version: r.fingerprint for r in await conn.execute(select(snapshots.c.version, snapshots.c.fingerprint))
        }
