"""Group commit on PostgreSQL: 200 concurrent appenders through the store, against asyncpg doing
one committed INSERT per event of the same rows into the same table, in the same run, on a
throwaway cluster with fsync on (as in production; the tests' clusters run with fsync off).

For reference, asyncpg alone inserting groups of the size the store committed, one transaction
and one INSERT ... SELECT FROM unnest(arrays) each (the fastest way the driver knows to write a
group, and the statement the store's writer sends): what the server allows on this machine,
which bounds the group commit figure whatever the store does."""

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
from benchmarks.suite.store_figures import EVENT, _close, _store, many_callers
from tests.support.daemon import free_port
from tests.support.postgres import _as_postgres, _bindir
from wingman.engine.events import new_id
from wingman.engine.store.hashing import canonical_json

_INSERT = (
    "INSERT INTO events (stream_id, version, event_id, type, data, metadata, recorded_at, prev_hash, hash,"
    " position) VALUES ($1, $2, $3, $4, $5::json, $6::json, $7, $8, $9, $10)"
)


class Cluster:
    def __init__(self):
        bindir = _bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries are not installed (bash .ci/system.sh)")
        self.bindir, self.folder, self.port = bindir, Path(tempfile.mkdtemp(prefix="wingman-bench-pg-")), free_port()
        shutil.chown(self.folder, "postgres", "postgres")

    def __enter__(self) -> Cluster:
        data = self.folder / "data"
        _as_postgres([str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"])
        _as_postgres(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.folder / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port} -k {self.folder} -c listen_addresses=''",
                "start",
            ]
        )
        _as_postgres(
            ["psql", "-h", str(self.folder), "-p", str(self.port), "-U", "postgres", "-c", "CREATE DATABASE bench"]
        )
        return self

    def __exit__(self, *exc) -> None:
        _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "stop"])
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@/bench?host={self.folder}&port={self.port}"


async def plain_inserts(cluster: Cluster, count: int) -> float:
    conn = await asyncpg.connect(host=str(cluster.folder), port=cluster.port, user="postgres", database="bench")
    start = (await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")) + 1
    stream, meta, now = f"plain-{uuidlib.uuid4()}", canonical_json(EVENT.metadata), datetime.now(UTC)
    t0 = time.perf_counter()
    for i in range(count):  # each execute outside a transaction block commits on its own
        await conn.execute(
            _INSERT, stream, i + 1, str(uuidlib.uuid4()), EVENT.type, "{}", meta, now, "0" * 64, "1" * 64, start + i
        )
    rate = count / (time.perf_counter() - t0)
    await conn.close()
    return rate


_GROUP_INSERT = (
    "INSERT INTO events (position, stream_id, version, event_id, type, data, metadata, recorded_at,"
    " prev_hash, hash) SELECT * FROM unnest($1::bigint[], $2::varchar[], $3::int[], $4::varchar[],"
    " $5::varchar[], $6::text[]::json[], $7::text[]::json[], $8::timestamptz[], $9::varchar[],"
    " $10::varchar[])"
)


async def plain_groups(cluster: Cluster, count: int, size: int) -> float:
    """Events/s: asyncpg inserting groups of `size` rows over `size` streams, one transaction each."""
    conn = await asyncpg.connect(host=str(cluster.folder), port=cluster.port, user="postgres", database="bench")
    start = (await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")) + 1
    run, meta, now = uuidlib.uuid4(), canonical_json(EVENT.metadata), datetime.now(UTC)
    rows = [
        (start + i, f"plain-{run}-{i % size}", i // size + 1, new_id(), EVENT.type, "{}", meta, now, "0" * 64, "1" * 64)
        for i in range(count)
    ]
    t0 = time.perf_counter()
    for i in range(0, count, size):
        async with conn.transaction():
            await conn.execute(_GROUP_INSERT, *[list(column) for column in zip(*rows[i : i + size], strict=False)])
    rate = count / (time.perf_counter() - t0)
    await conn.close()
    return rate


async def _measure(cluster: Cluster, n_plain: int, n_group: int, callers: int) -> dict:
    store = await _store(cluster.url)  # migrates the database too
    try:
        base_before = await plain_inserts(cluster, n_plain)
        grouped, commits = await many_callers(store, n_group, callers)
        # The baseline inserts behind the store's back: the writer reads the log's end in each
        # transaction, so its positions stay gapless.
        base_after = await plain_inserts(cluster, n_plain)
    finally:
        await _close(store)
    ceiling = await plain_groups(cluster, n_group, max(1, n_group // max(commits, 1)))
    return {
        "baseline_before": base_before,
        "baseline_after": base_after,
        "grouped": grouped,
        "transactions": commits,
        "events": n_group,
        "asyncpg_same_groups": ceiling,
    }


def postgres_figures(smoke: bool) -> list[Figure]:
    n_plain, n_group, callers = (100, 2000, 200) if smoke else (1000, 40000, 200)
    with Cluster() as cluster:
        r = asyncio.run(_measure(cluster, n_plain, n_group, callers))
    base = (r["baseline_before"] + r["baseline_after"]) / 2
    return [
        Figure(
            f"group commit, {callers} appenders (PostgreSQL, fsync on)",
            r["grouped"],
            base,
            "events/s",
            baseline_label="asyncpg: one committed INSERT per event",
            target_ratio=20,
            raw=r,
        ),
        Figure(
            "  the same against asyncpg inserting groups of that size",
            r["grouped"],
            r["asyncpg_same_groups"],
            "events/s",
            baseline_label="asyncpg: the same groups, one transaction and one INSERT each (the server's ceiling)",
        ),
    ]
