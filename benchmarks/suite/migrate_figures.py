"""`wingman db migrate-to`: a node's SQLite log (synthetic, legal, hash-chained) copied into a
throwaway PostgreSQL cluster with fsync on, in events per second, against asyncpg alone copying
the same rows, already read and in memory, into an empty events table in one COPY: what the
server takes at best, which bounds the command whatever it does (it also reads the file, turns
SQLite's times into timestamps, and commits once a batch)."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from benchmarks.suite.figures import Figure
from benchmarks.suite.postgres_figures import Cluster
from tests.support.postgres import _as_postgres
from tests.support.synthetic_log import build_log
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.migrate_to import migrate_to


async def build_sqlite(path: Path, events: int) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(engine)
        await build_log(engine, events, servers=50, seed=29)
    finally:
        await engine.dispose()


async def plain_copy(cluster: Cluster, path: Path) -> float:
    """Events/s: asyncpg's COPY of every row, read beforehand, into the schema the store made."""
    engine = create_engine(cluster.url.replace("/bench?", "/baseline?"))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    con = sqlite3.connect(path)
    columns = [r[1] for r in con.execute("PRAGMA table_info(events)")]
    at = columns.index("recorded_at")
    rows = [
        (*r[:at], datetime.fromisoformat(r[at]).replace(tzinfo=UTC), *r[at + 1 :])
        for r in con.execute(f"SELECT {', '.join(columns)} FROM events ORDER BY position")
    ]
    con.close()
    conn = await asyncpg.connect(host=str(cluster.folder), port=cluster.port, user="postgres", database="baseline")
    try:
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("events", records=rows, columns=columns)
        return len(rows) / (time.perf_counter() - t0)
    finally:
        await conn.close()


def measure(events: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="wingman-bench-migrate-") as folder, Cluster() as cluster:
        path = Path(folder) / "wingman.db"
        t0 = time.perf_counter()
        asyncio.run(build_sqlite(path, events))
        built = time.perf_counter() - t0
        result = asyncio.run(migrate_to(f"sqlite+aiosqlite:///{path}", cluster.url))
        again = asyncio.run(migrate_to(f"sqlite+aiosqlite:///{path}", cluster.url))
        _as_postgres(
            [
                "psql",
                "-h",
                str(cluster.folder),
                "-p",
                str(cluster.port),
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE baseline",
            ]
        )
        baseline = asyncio.run(plain_copy(cluster, path))
    return {
        "events": events,
        "seconds": result.seconds,
        "events_per_second": result.events_per_second,
        "second_run_seconds": again.seconds,
        "second_run_copied": again.copied,
        "asyncpg_copy_events_per_second": baseline,
        "sqlite_build_seconds": built,
    }


def migrate_figures(smoke: bool) -> list[Figure]:
    r = measure(5_000 if smoke else 200_000)
    return [
        Figure(
            f"migrate-to, {r['events']:,} events SQLite -> PostgreSQL (fsync on)",
            r["events_per_second"],
            r["asyncpg_copy_events_per_second"],
            "events/s",
            baseline_label="asyncpg: one COPY of the same rows, already in memory (the server's ceiling)",
            target_ratio=0.5,
            raw=r,
        ),
        Figure(
            "  migrate-to run again (compares every row, copies nothing)",
            r["second_run_seconds"],
            None,
            "s",
            lower_is_better=True,
            raw={"copied": r["second_run_copied"]},
        ),
    ]


if __name__ == "__main__":  # by hand: python -m benchmarks.suite.migrate_figures 1000000
    import sys

    print(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
