"""Event store append throughput on a real SQLite file (synchronous=FULL).

Baseline: one caller appending one event at a time (one transaction each). Measured: many
concurrent callers, grouped by the store's single writer. The ratio is the number to track.

Then the cost of the audit checkpoints on that group-commit figure, in the same run: the same
grouped load on a fresh database (a) with the store alone, (b) with the Merkle tree kept by a
store subscriber, and (c) with the daemon's whole checkpointer (tree, a signed checkpoint every
1,000 events or 1 s, each written to the checkpoints table and fsynced to the checkpoint file).
Each setup runs --rounds times, interleaved, and the median is shown.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.checkpoints.checkpointer import Checkpointer, CheckpointSettings  # noqa: E402
from engine.store.database import create_engine, sqlite_url, upgrade  # noqa: E402
from engine.events import Metadata, NewEvent, ServerSuspended  # noqa: E402
from engine.store.event_store import EventStore  # noqa: E402
from engine.store.merkle import CompactRange, leaf_hash  # noqa: E402

EVENT = NewEvent.of(ServerSuspended(), Metadata(actor="bench"))


async def grouped(store: EventStore, events: int, callers: int) -> float:
    async def caller(n: int):
        for _ in range(events // callers):
            await store.append(f"s{n}", [EVENT])

    t0 = time.perf_counter()
    await asyncio.gather(*[caller(n) for n in range(callers)])
    return (events // callers * callers) / (time.perf_counter() - t0)


async def measure(url: str, events: int, callers: int) -> tuple[float, float, int]:
    engine = create_engine(url)
    await upgrade(engine)
    store = EventStore(engine)
    await store.open()
    t0 = time.perf_counter()
    for i in range(events // 10):
        await store.append(f"seq{i % 10}", [EVENT])
    sequential = (events // 10) / (time.perf_counter() - t0)
    commits_before = store.commits
    rate = await grouped(store, events, callers)
    commits = store.commits - commits_before
    await store.close()
    await engine.dispose()
    return sequential, rate, commits


async def with_audit(setup: str, events: int, callers: int) -> tuple[float, int]:
    """Grouped appends/s on a fresh SQLite file with the store alone, the tree, or the checkpointer."""
    folder = Path(tempfile.mkdtemp(prefix="wingman-bench-"))
    engine = create_engine(sqlite_url(folder))
    await upgrade(engine)
    store = EventStore(engine)
    await store.open()
    checkpointer, signed = None, 0
    if setup == "tree":
        tree = CompactRange()

        def follow(evs):
            for ev in evs:
                tree.append_hash(leaf_hash(bytes.fromhex(ev.hash)))
        store.subscribe(follow)
    elif setup == "checkpoints":
        checkpointer = Checkpointer(store, CheckpointSettings(
            key_file=folder / "key.pem", checkpoint_file=folder / "checkpoints.jsonl", node_id="bench"))
        await checkpointer.start()
    rate = await grouped(store, events, callers)
    await store.close()
    if checkpointer is not None:
        await checkpointer.stop()
        signed = checkpointer.last.seq if checkpointer.last else 0
    await engine.dispose()
    return rate, signed


def subscriber_cost(events: int = 100_000) -> tuple[float, float]:
    """CPU time of the tree subscriber per event, and of signing one checkpoint, without the noise
    of the database: what the writer waits for at each commit."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from engine.store.checkpoint_format import make_body, sign

    hashes = [f"{i:064x}" for i in range(events)]
    tree = CompactRange()
    t0 = time.perf_counter()
    for h in hashes:
        tree.append_hash(leaf_hash(bytes.fromhex(h)))
    per_event = (time.perf_counter() - t0) / events
    key = Ed25519PrivateKey.generate()
    t0 = time.perf_counter()
    for seq in range(1, 1001):
        sign(key, make_body(seq=seq, size=tree.size, root=tree.root(), time="2026-01-01T00:00:00Z", node="bench",
                            key=key.public_key()))
    return per_event, (time.perf_counter() - t0) / 1000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--callers", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3, help="rounds of the with/without-checkpoints comparison")
    p.add_argument("--database-url", default=None, help="default: a temp SQLite file")
    args = p.parse_args()
    url = args.database_url or sqlite_url(Path(tempfile.mkdtemp()))
    seq, rate, commits = asyncio.run(measure(url, args.events, args.callers))
    print(f"one caller, one transaction per event: {seq:,.0f} events/s")
    print(f"{args.callers} concurrent callers, group commit: {rate:,.0f} events/s in {commits} transactions")
    print(f"ratio grouped/sequential: {rate / seq:.1f}x")

    results: dict[str, list[float]] = {"store": [], "tree": [], "checkpoints": []}
    signed: list[int] = []
    for _ in range(args.rounds):
        for setup in results:
            r, n = asyncio.run(with_audit(setup, args.events, args.callers))
            results[setup].append(r)
            if setup == "checkpoints":
                signed.append(n)
    base = statistics.median(results["store"])
    print(f"group commit on a fresh file, median of {args.rounds} rounds ({args.events:,} events, {args.callers} callers):")
    for setup, label in (("store", "store alone"), ("tree", "+ Merkle tree (store subscriber)"),
                         ("checkpoints", "+ tree and signed checkpoints (table + fsynced file)")):
        m = statistics.median(results[setup])
        print(f"  {label:55s} {m:9,.0f} events/s  ({m / base:.2f}x)")
    print(f"  checkpoints signed per run: {statistics.median(signed):.0f}")
    per_event, per_checkpoint = subscriber_cost()
    print(f"tree subscriber: {per_event * 1e6:.1f} us of CPU per event; root + signature of a checkpoint: "
          f"{per_checkpoint * 1e6:.0f} us")


if __name__ == "__main__":
    main()
