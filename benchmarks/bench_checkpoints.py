"""The audit checkpoints on a large log: boot, verification and proofs.

Builds a synthetic legal log (tests.support.synthetic_log, bulk-inserted) in a temporary SQLite file, then
measures
- boot without a checkpoint: the tree folded from every event (leaves recomputed from the rows),
  and the checkpoint signed over it at shutdown;
- boot with that checkpoint: the tree resumed from its compact range (the daemon's normal boot);
- verification: the per-stream checks alone, the checkpoint checks alone, and both in one pass
  (what `wingman audit verify --key` does), in events/s;
- an inclusion proof and a consistency proof (`wingman audit prove`).

    .venv/bin/python benchmarks/bench_checkpoints.py --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.synthetic_log import build_log
from wingman.engine.audit.verify import verify, verify_everything
from wingman.engine.checkpoints.checkpointer import Checkpointer, CheckpointSettings
from wingman.engine.checkpoints.proofs import prove_consistency, prove_inclusion
from wingman.engine.checkpoints.verify import verify_checkpoints
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.event_store import EventStore


async def timed(coro):
    t = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - t


async def boot(engine, folder: Path) -> tuple[Checkpointer, EventStore, float]:
    store = EventStore(engine)
    await store.open()
    cp = Checkpointer(
        store, CheckpointSettings(key_file=folder / "key.pem", checkpoint_file=folder / "cp.jsonl", node_id="bench")
    )
    _, t = await timed(cp.start())
    return cp, store, t


async def shutdown(cp: Checkpointer, store: EventStore) -> float:
    await store.close()
    _, t = await timed(cp.stop())
    return t


async def main(args) -> None:
    folder = Path(args.dir or tempfile.mkdtemp(prefix="wingman-bench-"))
    db = folder / "bench.db"
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await upgrade(engine)
    n = args.events
    _, t = await timed(build_log(engine, n, servers=args.servers, seed=args.seed))
    print(f"build:     {n:,} events over {args.servers} servers in {t:.1f} s; file {db.stat().st_size / 2**20:.0f} MiB")

    cp, store, t = await boot(engine, folder)
    print(
        f"boot, no checkpoint yet: tree folded from every event in {t:.1f} s ({n / t:,.0f} events/s), "
        f"how={cp.resumed.how}"
    )
    t = await shutdown(cp, store)
    print(f"shutdown checkpoint over {n:,} events (signed, table + file): {t * 1e3:.0f} ms")
    key = cp.public_key
    cp, store, t = await boot(engine, folder)
    print(
        f"boot from the checkpoint: tree resumed in {t * 1e3:.0f} ms, how={cp.resumed.how}, "
        f"events read {cp.resumed.folded}"
    )
    await shutdown(cp, store)

    report, t_plain = await timed(verify(engine))
    print(
        f"verify, per-stream checks only:   {t_plain:6.1f} s "
        f"({report.events_checked / t_plain:,.0f} events/s), ok={report.ok}"
    )
    cpr, t = await timed(verify_checkpoints(engine, key, folder / "cp.jsonl"))
    print(
        f"verify, checkpoint checks only:   {t:6.1f} s ({cpr.log_size / t:,.0f} events/s), ok={cpr.ok}, "
        f"checkpoints {cpr.believed}"
    )
    (report, cpr), t = await timed(verify_everything(engine, None, key, folder / "cp.jsonl"))
    print(
        f"verify --key, both in one pass:   {t:6.1f} s ({cpr.log_size / t:,.0f} events/s), ok={report.ok and cpr.ok}; "
        f"{t / t_plain:.2f}x the per-stream checks alone"
    )
    _, t = await timed(prove_inclusion(engine, n // 2, key))
    print(f"prove {n // 2} (inclusion against the checkpoint of {n:,}): {t:.1f} s")
    _, t = await timed(prove_consistency(engine, n, n, key))
    print(f"prove --consistency {n} {n}: {t:.1f} s (the tree rebuilt from the leaves kept with the checkpoints)")
    await engine.dispose()
    if not args.keep:
        for f in folder.iterdir():
            os.remove(f)
        folder.rmdir()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--servers", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", help="where to put the database (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the database file")
    asyncio.run(main(ap.parse_args()))
