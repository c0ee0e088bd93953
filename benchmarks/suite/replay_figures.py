"""Replay on a large log: the first full replay (every event folded, snapshots saved on the way)
against a raw SELECT of the same rows through sqlite3, and the state at random points of the log
once snapshots are there.

The log is synthetic but legal (tests.support.synthetic_log: real hash chains, bulk-inserted), 1,000,000
events over 10 servers by default.
"""

from __future__ import annotations

import asyncio
import gc
import random
import shutil
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from benchmarks.suite.figures import Figure
from tests.support.synthetic_log import BASE_TIME, build_log
from wingman.engine import heap
from wingman.engine.audit.what_if import replay_against
from wingman.engine.servers.replay import build_snapshots, state_at
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.statechart import load_statechart
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.points import Point


def raw_scan(db: Path) -> float:
    """Seconds to read every column of every row, one stream at a time in version order (the
    order a replay reads them), through sqlite3 with no processing."""
    conn = sqlite3.connect(db)
    t0 = time.perf_counter()
    streams = [r[0] for r in conn.execute("SELECT DISTINCT stream_id FROM events")]
    n = 0
    for sid in streams:
        for _ in conn.execute("SELECT * FROM events WHERE stream_id = ? ORDER BY version", (sid,)):
            n += 1
    took = time.perf_counter() - t0
    conn.close()
    return took


async def _measure(db: Path, events: int, servers: int, queries: int) -> dict:
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await upgrade(engine)
    t0 = time.perf_counter()
    ids = await build_log(engine, events, servers=servers, seed=1)
    built = time.perf_counter() - t0
    raw_before = raw_scan(db)
    cache = SnapshotCache(engine)
    young = gc.get_threshold()
    heap.settle()  # as in the daemon, whose replays run once boot has settled its heap
    t0 = time.perf_counter()
    folded = await build_snapshots(engine, cache)
    replay = time.perf_counter() - t0
    raw_after = raw_scan(db)
    # `wingman audit replay --statechart`: the same log asked of a chart (the one in force: the
    # whole log is read and checked, nothing found), beside the daemon's own replay just above.
    t0 = time.perf_counter()
    what_if = await replay_against(engine, load_statechart(), "power.yaml")
    what_if_s = time.perf_counter() - t0
    rng = random.Random(1)
    at_position, at_time = [], []
    for _ in range(queries):
        server = rng.choice(ids)
        t0 = time.perf_counter()
        await state_at(engine, server, Point(position=rng.randint(1, events)), cache)
        at_position.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await state_at(engine, server, Point(time=BASE_TIME + timedelta(seconds=rng.uniform(0, events))), cache)
        at_time.append(time.perf_counter() - t0)
    await engine.dispose()
    gc.unfreeze()  # the groups measured after this one find the collector as it was
    gc.set_threshold(*young)
    return {
        "build_s": built,
        "replay_s": replay,
        "folded": folded,
        "raw_scan_s": (raw_before + raw_after) / 2,
        "raw_scan_before_s": raw_before,
        "raw_scan_after_s": raw_after,
        "what_if_s": what_if_s,
        "what_if_transitions": what_if.events_checked,
        "what_if_accepted": what_if.accepted,
        "at_position_ms": [x * 1000 for x in at_position],
        "at_time_ms": [x * 1000 for x in at_time],
    }


def _p(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def replay_figures(smoke: bool) -> list[Figure]:
    events, servers, queries = (20_000, 10, 20) if smoke else (1_000_000, 10, 200)
    folder = Path(tempfile.mkdtemp(prefix="wingman-bench-replay-"))
    try:
        r = asyncio.run(_measure(folder / "bench.db", events, servers, queries))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ours, raw = r["folded"] / r["replay_s"], r["folded"] / r["raw_scan_s"]
    points = r["at_position_ms"] + r["at_time_ms"]
    return [
        Figure(
            f"full replay of {events:,} events (every event folded)",
            ours,
            raw,
            "events/s",
            baseline_label="raw sqlite3 SELECT of the same rows",
            target_ratio=0.3,
            raw={k: v for k, v in r.items() if not k.startswith("at_")},
        ),
        Figure(
            f"what-if replay of that log against a statechart ({r['what_if_transitions']:,} transitions checked)",
            events / r["what_if_s"],
            ours,
            "events/s",
            baseline_label="the full replay above (events of the log per second)",
            target_ratio=1.0,
            raw={"what_if_s": r["what_if_s"], "accepted": r["what_if_accepted"]},
            error=None if r["what_if_accepted"] else "the chart in force refused its own history",
        ),
        Figure(
            f"state at a random point of that log, p99 ({len(points)} queries)",
            _p(points, 0.99),
            None,
            "ms",
            baseline_label=f"p50 {_p(points, 0.5):.1f} ms, max {max(points):.1f} ms",
            target_value=20,
            lower_is_better=True,
            raw={"at_position_ms": r["at_position_ms"], "at_time_ms": r["at_time_ms"]},
        ),
    ]
