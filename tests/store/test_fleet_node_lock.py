"""The node lock on a real PostgreSQL (engine.fleet.node_lock): one holder per node id, a second
one told who holds it, and the lock taken again when its session is lost under the daemon."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import text

from tests.support.waiting import eventually_async
from wingman.engine.fleet.node_lock import NodeTaken, PostgresNodeLock, hold_node_lock, lock_key, node_taken
from wingman.engine.store.database import create_engine

pytestmark = pytest.mark.postgres


async def _holders(url: str, node_id: str) -> list[int]:
    """The pids of the sessions holding the node's advisory key."""
    unsigned = lock_key(node_id) & 0xFFFFFFFFFFFFFFFF
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                    " AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid)"
                ),
                {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF},
            )
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


async def _terminate(url: str, pid: int) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await engine.dispose()


async def test_one_holder_per_node_id_and_the_second_is_told_who(pg_url):
    first = await hold_node_lock(pg_url, "node-a")
    other = await hold_node_lock(pg_url, "node-b")  # another node id is another lock
    assert first is not None and other is not None
    try:
        with pytest.raises(
            NodeTaken, match=f"node id 'node-a' is taken on this database: wingman pid {os.getpid()} on "
        ):
            await hold_node_lock(pg_url, "node-a")
        assert len(await _holders(pg_url, "node-a")) == 1
        # The command's look before it starts anything: who holds it, and nothing held after.
        taken = await asyncio.to_thread(node_taken, pg_url, "node-a")
        assert taken is not None and f"wingman pid {os.getpid()} on " in str(taken)
        assert await asyncio.to_thread(node_taken, pg_url, "node-c") is None
        assert await _holders(pg_url, "node-c") == []
    finally:
        await first.release()
        await other.release()
    again = await hold_node_lock(pg_url, "node-a")  # released: free for the next daemon
    assert again is not None
    await again.release()
    assert await _holders(pg_url, "node-a") == []


async def test_a_lost_session_is_replaced_and_the_lock_taken_again(pg_url):
    lock = PostgresNodeLock(pg_url, "node-a", check_every=0.2)
    await lock.take()
    try:
        [pid] = await _holders(pg_url, "node-a")
        await _terminate(pg_url, pid)  # as a restart or a failover of the database would
        holders = await eventually_async(
            lambda: _holders(pg_url, "node-a"), 30, "the node lock to be held again", until=lambda h: h and h != [pid]
        )
        assert len(holders) == 1 and lock.held
    finally:
        await lock.release()


async def test_a_node_id_taken_while_the_lock_was_lost_is_not_taken_back_until_it_is_free(pg_url):
    lock = PostgresNodeLock(pg_url, "node-a", check_every=1.0)
    await lock.take()
    intruder = PostgresNodeLock(pg_url, "node-a", check_every=60)
    try:
        [pid] = await _holders(pg_url, "node-a")
        await _terminate(pg_url, pid)
        await eventually_async(
            intruder.take, 10, "the intruder to take the lost node id", ignoring=(NodeTaken,), until=lambda _: True
        )
        await eventually_async(lambda: not lock.held, 30, "the first holder to see its lock gone")
        intruders = await _holders(pg_url, "node-a")
        assert len(intruders) == 1 and not lock.held  # the first waits; it does not take it back
        await intruder.release()
        await eventually_async(lambda: lock.held, 30, "the first holder to take its node id back")
        assert len(await _holders(pg_url, "node-a")) == 1
    finally:
        await intruder.release()
        await lock.release()
