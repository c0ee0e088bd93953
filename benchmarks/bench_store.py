"""Event store append throughput on a real SQLite file (synchronous=FULL).

Baseline: one caller appending one event at a time (one transaction each). Measured: many
concurrent callers, grouped by the store's single writer. The ratio is the number to track.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.store.database import create_engine, sqlite_url, upgrade  # noqa: E402
from engine.events import Metadata, NewEvent, ServerSuspended  # noqa: E402
from engine.store.event_store import EventStore  # noqa: E402


async def measure(url: str, events: int, callers: int) -> tuple[float, float, int]:
    engine = create_engine(url)
    await upgrade(engine)
    store = EventStore(engine)
    await store.open()
    ev = NewEvent.of(ServerSuspended(), Metadata(actor="bench"))
    t0 = time.perf_counter()
    for i in range(events // 10):
        await store.append(f"seq{i % 10}", [ev])
    sequential = (events // 10) / (time.perf_counter() - t0)
    commits_before = store.commits

    async def caller(n: int):
        for i in range(events // callers):
            await store.append(f"s{n}", [ev])

    t0 = time.perf_counter()
    await asyncio.gather(*[caller(n) for n in range(callers)])
    grouped = (events // callers * callers) / (time.perf_counter() - t0)
    commits = store.commits - commits_before
    await store.close()
    await engine.dispose()
    return sequential, grouped, commits


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--callers", type=int, default=200)
    p.add_argument("--database-url", default=None, help="default: a temp SQLite file")
    args = p.parse_args()
    url = args.database_url or sqlite_url(Path(tempfile.mkdtemp()))
    seq, grouped, commits = asyncio.run(measure(url, args.events, args.callers))
    print(f"one caller, one transaction per event: {seq:,.0f} events/s")
    print(f"{args.callers} concurrent callers, group commit: {grouped:,.0f} events/s in {commits} transactions")
    print(f"ratio grouped/sequential: {grouped / seq:.1f}x")


if __name__ == "__main__":
    main()
