"""Replay speed: point-in-time state queries over a large log, with and without snapshots.

Builds a synthetic legal log (tests.synthetic_log: correct hash chains, bulk-inserted) in a
temporary SQLite file, then measures
- the first replay of each server (no snapshots yet: folds its whole stream and saves snapshots),
- point-in-time queries at random positions and random times (snapshots warm),
- the same queries with snapshots switched off, on a few points (the cost snapshots save),
- optionally a full verification of the log (--verify).

    .venv/bin/python benchmarks/bench_replay.py --events 1000000 --servers 10 --queries 200
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.store.points import Point  # noqa: E402
from engine.servers.replay import build_snapshots, state_at  # noqa: E402
from engine.servers.snapshots import DEFAULT_EVERY, SnapshotCache  # noqa: E402
from tests.synthetic_log import BASE_TIME, build_log  # noqa: E402
from engine.audit.verify import verify  # noqa: E402
from engine.store.database import create_engine, upgrade  # noqa: E402


def ms(values: list[float]) -> str:
    v = sorted(values)
    p = lambda q: v[min(len(v) - 1, int(q * len(v)))]  # noqa: E731
    return (f"n={len(v)}  mean {statistics.mean(v) * 1e3:7.1f} ms  p50 {p(0.5) * 1e3:7.1f} ms  "
            f"p95 {p(0.95) * 1e3:7.1f} ms  max {v[-1] * 1e3:7.1f} ms")


async def timed(coro):
    t = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - t


async def main(args) -> None:
    folder = Path(args.dir or tempfile.mkdtemp(prefix="wingman-bench-"))
    db = folder / "bench.db"
    if db.exists():
        os.remove(db)
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await upgrade(engine)
    print(f"database: {db}")

    ids, t = await timed(build_log(engine, args.events, servers=args.servers, seed=args.seed))
    print(f"build:    {args.events:,} events over {args.servers} servers in {t:.1f} s "
          f"({args.events / t:,.0f} events/s); file {db.stat().st_size / 2**20:.0f} MiB")

    rng = random.Random(args.seed)
    cache = SnapshotCache(engine, every=args.every)
    _, t = await timed(build_snapshots(engine, cache))
    print(f"snapshots: first replay of every stream (folds the whole log, saves a snapshot every "
          f"{args.every} events of a stream): {t:.1f} s")

    span = args.events  # one event per second in the synthetic log
    by_pos, by_time = [], []
    for _ in range(args.queries):
        server = rng.choice(ids)
        _, t = await timed(state_at(engine, server, Point(position=rng.randint(1, args.events)), cache))
        by_pos.append(t)
        at = BASE_TIME + timedelta(seconds=rng.uniform(0, span))
        _, t = await timed(state_at(engine, server, Point(time=at), cache))
        by_time.append(t)
    print(f"warm, at a position: {ms(by_pos)}")
    print(f"warm, at a time:     {ms(by_time)}")

    cold = []
    for _ in range(args.cold):
        server = rng.choice(ids)
        _, t = await timed(state_at(engine, server, Point(position=rng.randint(args.events // 2, args.events)), None))
        cold.append(t)
    print(f"no snapshots (fold from the first event), at a position in the second half: {ms(cold)}")

    if args.verify:
        report, t = await timed(verify(engine))
        print(f"verify:   {report.events_checked:,} events, ok={report.ok}, {t:.1f} s "
              f"({report.events_checked / t:,.0f} events/s)")
    await engine.dispose()
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        if not args.dir:
            folder.rmdir()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--servers", type=int, default=10)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cold", type=int, default=3, help="queries without snapshots")
    ap.add_argument("--every", type=int, default=DEFAULT_EVERY, help="events between snapshots")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--verify", action="store_true", help="also time a full verification")
    ap.add_argument("--dir", help="where to put the database (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the database file")
    asyncio.run(main(ap.parse_args()))
