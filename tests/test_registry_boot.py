"""The daemon's boot fold: from replay snapshots when streams are long, from event 1 otherwise,
with the same answer either way; finished operations leave memory and are read back by id."""
import pytest

from engine.servers.snapshots import SnapshotCache
from engine.servers.registry import ServerRegistry
from engine.statechart import PowerMachine
from tests.support import definition


def comparable(view):
    d = view.as_dict()
    d["operations"] = {k: op.as_dict() for k, op in view.operations.items()}
    d["last_process"], d["last_exit"] = view.last_process, view.last_exit
    return d


@pytest.fixture
def servers():
    return [definition(), definition()]


async def history(h, uuid):
    """A history longer than the snapshot interval used below (every 5 events)."""
    for action in ("start", "stop", "start", "restart", "kill", "kill"):
        await h.outcome(await h.act(uuid, action))


async def test_snapshot_boot_equals_a_full_fold(engine_harness, servers):
    uuids = [s["settings"]["uuid"] for s in servers]
    async with engine_harness(servers) as h:
        h.daemon.snapshot_cache.every = 5
        for uuid in uuids:
            await history(h, uuid)
        started = await h.act(uuids[0], "start")  # left running, with an operation in flight
        await h.outcome(started)
        store = h.daemon.store

        full = ServerRegistry(store, PowerMachine())
        await full.load()
        cache = SnapshotCache(store.engine, every=5)
        from_snapshots = ServerRegistry(store, PowerMachine())
        await from_snapshots.load(cache)
        assert await from_snapshots._long_streams(5)  # the snapshot path really ran
        for uuid in uuids:
            assert comparable(from_snapshots.get(uuid)) == comparable(full.get(uuid)) == comparable(h.daemon.registry.get(uuid))
            assert from_snapshots.state(uuid) == h.daemon.registry.state(uuid)
        full.close()
        from_snapshots.close()


async def test_finished_operations_leave_memory_and_are_read_back_from_the_log(engine_harness, servers):
    uuid = servers[0]["settings"]["uuid"]
    async with engine_harness(servers) as h:
        op = await h.outcome(await h.act(uuid, "kill"))
        registry = h.daemon.registry
        assert op.id not in registry.get(uuid).operations  # the view keeps only open operations
        registry.recently_finished.clear()  # as after a restart, or 10,000 operations later
        again, events = await registry.find_operation(op.id)
        assert again is not None and again.as_dict() == op.as_dict()
        assert [e.type for e in events] == ["power.requested", "power.started", "power.succeeded"]
        missing, none = await registry.find_operation("00000000-0000-0000-0000-000000000000")
        assert missing is None and none == []
