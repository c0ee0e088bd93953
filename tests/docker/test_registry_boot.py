"""The daemon's boot fold: from replay snapshots when streams are long, from event 1 otherwise,
with the same answer either way; finished operations leave memory and are read back by id."""

import pytest

from tests.conftest import TEST_META
from tests.support.daemon import definition, opened_store
from wingman.engine.servers.registry import ServerRegistry
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.statechart import PowerMachine


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
        assert from_snapshots.snapshot_versions  # the snapshot path really ran
        for uuid in uuids:
            assert (
                comparable(from_snapshots.get(uuid))
                == comparable(full.get(uuid))
                == comparable(h.daemon.registry.get(uuid))
            )
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


async def test_after_a_clean_stop_every_server_boots_from_its_snapshot(engine_harness, servers):
    """A clean stop leaves each server a snapshot of where it stands (its streams are far
    shorter than the snapshot interval here); the next boot starts every server from it, folds
    nothing, and gets what a full fold of the log gets."""
    uuids = [s["settings"]["uuid"] for s in servers]
    async with engine_harness(servers) as h:
        for uuid in uuids:
            await history(h, uuid)
        await h.outcome(await h.act(uuids[0], "start"))  # left running
        url = h.config.database_url
    async with opened_store(url) as store:
        full = ServerRegistry(store, PowerMachine())
        await full.load()
        booted = ServerRegistry(store, PowerMachine())
        await booted.load(SnapshotCache(store.engine))
        servers_streams = {s: v for s, v in store.stream_versions().items() if not s.startswith("node:")}
        assert booted.snapshot_versions == servers_streams  # every server's stream, at its head
        for uuid in uuids:
            assert comparable(booted.get(uuid)) == comparable(full.get(uuid))
        # One more event on one server: the next boot folds just that one, on top of its snapshot.
        await full.update(
            uuids[1], {**servers[1], "settings": {**servers[1]["settings"], "suspended": True}}, TEST_META
        )
        again = ServerRegistry(store, PowerMachine())
        await again.load(SnapshotCache(store.engine))
        assert again.get(uuids[1]).suspended and again.get(uuids[1]).version == full.get(uuids[1]).version
        assert comparable(again.get(uuids[0])) == comparable(full.get(uuids[0]))
        for r in (full, booted, again):
            r.close()
