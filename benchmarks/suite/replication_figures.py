"""Group commit on PostgreSQL with a synchronous standby (`synchronous_standby_names`,
`synchronous_commit = on`: a commit is answered once the standby has it), as a fleet runs it: 200
concurrent appenders through the store, against asyncpg doing one committed INSERT per event into
the same primary, in the same run. Every commit waits for the standby's round trip, which the
group commit pays once per group and the one-by-one baseline once per event.

The pair is the tests' (tests.support.postgres.ReplicatedPair: two clusters with fsync off, on one
machine), so the figure is about the replication round trip, not the disks."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid as uuidlib
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from benchmarks.suite.figures import Figure
from benchmarks.suite.postgres_figures import _INSERT
from benchmarks.suite.store_figures import EVENT, _close, _store, many_callers
from tests.support.postgres import ReplicatedPair, _bindir
from wingman.engine.store.hashing import canonical_json


async def _one_by_one(pair: ReplicatedPair, count: int) -> float:
    conn = await asyncpg.connect(host=str(pair.folder), port=pair.ports["primary"], user="postgres", database="bench")
    start = (await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")) + 1
    stream, meta, now = f"plain-{uuidlib.uuid4()}", canonical_json(EVENT.metadata), datetime.now(UTC)
    t0 = time.perf_counter()
    for i in range(count):  # each execute outside a transaction block commits (and waits for the standby)
        await conn.execute(
            _INSERT, stream, i + 1, str(uuidlib.uuid4()), EVENT.type, "{}", meta, now, "0" * 64, "1" * 64, start + i
        )
    rate = count / (time.perf_counter() - t0)
    await conn.close()
    return rate


async def _measure(pair: ReplicatedPair, n_plain: int, n_group: int, callers: int) -> dict:
    store = await _store(pair.url_of("primary", "bench"))
    try:
        before = await _one_by_one(pair, n_plain)
        grouped, commits = await many_callers(store, n_group, callers)
        after = await _one_by_one(pair, n_plain)
    finally:
        await _close(store)
    lag = pair.psql("primary", "SELECT sync_state FROM pg_stat_replication")
    return {
        "baseline_before": before,
        "baseline_after": after,
        "grouped": grouped,
        "transactions": commits,
        "sync": lag,
    }


def replication_figures(smoke: bool) -> list[Figure]:
    n_plain, n_group, callers = (100, 2000, 200) if smoke else (1000, 40000, 200)
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries are not installed (bash .ci/system.sh)")
    folder = Path(tempfile.mkdtemp(prefix="wingman-bench-replica-"))
    shutil.chown(folder, "postgres", "postgres")
    pair = ReplicatedPair(bindir, folder)
    try:
        pair.start()
        pair.create_database("bench")
        r = asyncio.run(_measure(pair, n_plain, n_group, callers))
    finally:
        pair.stop()
        shutil.rmtree(folder, ignore_errors=True)
    base = (r["baseline_before"] + r["baseline_after"]) / 2
    figure = Figure(
        f"group commit, {callers} appenders, PostgreSQL with a synchronous standby",
        r["grouped"],
        base,
        "events/s",
        baseline_label="asyncpg: one committed INSERT per event, same primary",
        raw=r,
    )
    if r["sync"] != "sync":
        figure.error = f"the standby was not synchronous at the end ({r['sync']!r})"
    return [figure]
