"""The write path: one append, and group commit under many appenders, each against a plain
driver doing one committed INSERT per event, of the same rows into the same table (the events
table as the migrations make it, with its indexes), in the same run.

SQLite: WAL and synchronous=FULL on both sides (the store's own settings), the baseline through
the standard library's sqlite3. For reference, the same plain sqlite3 inserting groups of the same
size in one transaction each: what SQLite itself allows on this disk, which bounds the group
commit figure whatever the store does. PostgreSQL: both sides on the same throwaway cluster
(fsync on, as in production), the baseline through asyncpg.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import shutil
import sqlite3
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.suite.figures import Figure
from wingman.engine.events import Metadata, NewEvent, ServerSuspended, new_id
from wingman.engine.store.database import create_engine, sqlite_url, upgrade
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.hashing import canonical_json

EVENT = NewEvent.of(ServerSuspended(), Metadata(actor="bench"))
_INSERT = (
    "INSERT INTO events (stream_id, version, event_id, type, data, metadata, recorded_at, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_plain_streams = itertools.count()
GROWN_ROUNDS = 3  # group runs of the same servers before the grown-log figure


def _plain_rows(count: int, streams: int) -> list[tuple]:
    """Rows like the store's: the same event over `streams` streams taken in turn (as the store's
    callers do: the indexes see the same spread), ids drawn as the store draws them, fresh
    streams each run, ready-made hashes."""
    run, meta = next(_plain_streams), canonical_json(EVENT.metadata)
    return [
        (
            f"plain{run}-{i % streams}",
            i // streams + 1,
            new_id(),
            EVENT.type,
            "{}",
            meta,
            "2026-01-01 00:00:00.000000",
            "0" * 64,
            hashlib.sha256(str(i).encode()).hexdigest(),
        )
        for i in range(count)
    ]


def _plain_connection(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def plain_sqlite_inserts(db: Path, count: int) -> float:
    """Events/s: one committed INSERT per event through sqlite3."""
    conn, rows = _plain_connection(db), _plain_rows(count, 10)
    t0 = time.perf_counter()
    for row in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_INSERT, row)
        conn.execute("COMMIT")
    rate = count / (time.perf_counter() - t0)
    conn.close()
    return rate


def plain_sqlite_groups(db: Path, count: int, size: int) -> float:
    """Events/s: sqlite3 inserting groups of `size` rows, one transaction each (SQLite's ceiling)."""
    conn, rows = _plain_connection(db), _plain_rows(count, size)
    t0 = time.perf_counter()
    for i in range(0, count, size):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT, rows[i : i + size])
        conn.execute("COMMIT")
    rate = count / (time.perf_counter() - t0)
    conn.close()
    return rate


async def _migrated(db: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await upgrade(engine)
    await engine.dispose()


async def _store(url: str) -> EventStore:
    engine = create_engine(url)
    await upgrade(engine)
    store = EventStore(engine)
    await store.open()
    return store


async def _close(store: EventStore) -> None:
    await store.close()
    await store.engine.dispose()


async def thread_round_trip(count: int) -> float:
    """Seconds for the event loop to hand a thread an empty call and have its answer back: what a
    writer off the loop (the store's, so that no fsync stops the loop) pays on each append on top
    of the commit itself. The baseline commits on the caller's own thread and pays none of it."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as thread:
        await loop.run_in_executor(thread, int)  # the thread exists before the clock starts
        t0 = time.perf_counter()
        for _ in range(count):
            await loop.run_in_executor(thread, int)
        return (time.perf_counter() - t0) / count


async def one_caller(store: EventStore, count: int) -> float:
    t0 = time.perf_counter()
    for i in range(count):
        await store.append(f"one{i % 10}", [EVENT])
    return count / (time.perf_counter() - t0)


async def many_callers(store: EventStore, count: int, callers: int) -> tuple[float, int]:
    per = max(1, count // callers)

    async def caller(n: int):
        for _ in range(per):
            await store.append(f"c{n}", [EVENT])

    before = store.commits
    t0 = time.perf_counter()
    await asyncio.gather(*[caller(n) for n in range(callers)])
    return per * callers / (time.perf_counter() - t0), store.commits - before


def sqlite_figures(smoke: bool) -> list[Figure]:
    n_one, n_group, callers = (200, 2000, 200) if smoke else (2000, 40000, 200)
    folder = Path(tempfile.mkdtemp(prefix="wingman-bench-store-"))
    plain = folder / "plain.db"
    asyncio.run(_migrated(plain))
    base_one = plain_sqlite_inserts(plain, n_one)

    async def ours():
        store = await _store(sqlite_url(folder))
        try:
            round_trip = await thread_round_trip(n_one)
            one = await one_caller(store, n_one)
            grouped, commits = await many_callers(store, n_group, callers)
            g32, _ = await many_callers(store, n_group // 2, 32)
            # A node's log is not new: the same appenders once their servers each hold a few
            # pages of events, where every group writes an index leaf of each of its servers.
            for _ in range(GROWN_ROUNDS):
                await many_callers(store, n_group, callers)
            grown, _ = await many_callers(store, n_group, callers)
        finally:
            await _close(store)
        return round_trip, one, grouped, commits, g32, grown

    round_trip, one, grouped, commits, g32, grown = asyncio.run(ours())
    held = n_one + n_group // 2 + n_group * (1 + GROWN_ROUNDS)
    base_after = plain_sqlite_inserts(plain, n_one)  # the disk may have changed pace meanwhile
    base = (base_one + base_after) / 2
    ceiling = plain_sqlite_groups(plain, n_group, max(1, n_group // max(commits, 1)))
    shutil.rmtree(folder, ignore_errors=True)
    return [
        Figure(
            "one append, one caller (SQLite)",
            one,
            base,
            "events/s",
            target_ratio=0.5,
            baseline_label="sqlite3: one committed INSERT per event",
            raw={"baseline_before": base_one, "baseline_after": base_after, "events": n_one},
        ),
        Figure(
            "  the same against sqlite3 plus one empty thread round trip per event",
            one,
            1 / (1 / base + round_trip),
            "events/s",
            baseline_label=f"sqlite3 as above, plus the loop's hand-off to a thread and back "
            f"({round_trip * 1e6:.0f} us)",
            raw={"thread_round_trip_us": round_trip * 1e6},
        ),
        Figure(
            f"group commit, {callers} appenders (SQLite)",
            grouped,
            base,
            "events/s",
            target_ratio=10,
            baseline_label="sqlite3: one committed INSERT per event",
            raw={"events": n_group, "transactions": commits, "sqlite3_same_groups": ceiling},
        ),
        Figure(
            "  the same against sqlite3 inserting groups of that size",
            grouped,
            ceiling,
            "events/s",
            baseline_label="sqlite3: the same groups, one transaction each (SQLite's ceiling)",
        ),
        Figure(
            "group commit, 32 appenders (SQLite)",
            g32,
            base,
            "events/s",
            baseline_label="sqlite3: one committed INSERT per event",
            raw={"events": n_group // 2},
        ),
        Figure(
            f"group commit, {callers} appenders, on a log of {held:,} events (SQLite)",
            grown,
            base,
            "events/s",
            baseline_label="sqlite3: one committed INSERT per event",
            raw={"events": n_group, "events_before": held},
        ),
    ]


async def _with_audit(setup: str, events: int, callers: int) -> float:
    """Grouped appends/s on a fresh SQLite file with the store alone, or with the daemon's whole
    checkpointer (the Merkle tree kept from commits, signed checkpoints to table and file)."""
    from wingman.engine.checkpoints.checkpointer import Checkpointer, CheckpointSettings

    folder = Path(tempfile.mkdtemp(prefix="wingman-bench-audit-"))
    store = await _store(sqlite_url(folder))
    checkpointer = None
    if setup == "checkpoints":
        checkpointer = Checkpointer(
            store,
            CheckpointSettings(
                key_file=folder / "key.pem", checkpoint_file=folder / "checkpoints.jsonl", node_id="bench"
            ),
        )
        await checkpointer.start()
    try:
        rate, _ = await many_callers(store, events, callers)
    finally:
        await store.close()
        if checkpointer is not None:
            await checkpointer.stop()
        await store.engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    return rate


def checkpoint_cost_figures(smoke: bool) -> list[Figure]:
    """What the audit checkpoints cost the write path: the same grouped load with and without
    them, rounds interleaved, medians."""
    import statistics

    events, callers, rounds = (2000, 200, 1) if smoke else (20000, 200, 3)
    runs: dict[str, list[float]] = {"store": [], "checkpoints": []}
    for _ in range(rounds):
        for setup in runs:
            runs[setup].append(asyncio.run(_with_audit(setup, events, callers)))
    base, ours = statistics.median(runs["store"]), statistics.median(runs["checkpoints"])
    return [
        Figure(
            f"group commit with the Merkle tree and signed checkpoints ({callers} appenders)",
            ours,
            base,
            "events/s",
            baseline_label="the same load, store alone",
            raw=runs,
        )
    ]
