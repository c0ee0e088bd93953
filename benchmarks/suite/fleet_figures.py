"""Several nodes writing one PostgreSQL database (issue 29, docs/fleet.md): appends per second of
the whole fleet with 2 and 4 nodes, each a process with its own store (its own node id and
appenders on streams of its own), against one node alone, in the same run, on a throwaway cluster
with fsync on. One node runs before and after the fleets; its mean is the baseline.

Every node's groups take the log's lock in turn (positions in commit order across nodes), so the
fleet's figure says what that serialisation leaves of the single node's rate as nodes are added.
The database and every node share this machine's cores: on a small machine the figure is bounded
by its CPU as much as by the lock. Each node warms up first (one append per stream: the streams'
ownership claims), then all start at one agreed moment; a node's rate is its events over its own
time, the fleet's all events over the span from the first start to the last end.

    python -m benchmarks.suite.fleet_figures node URL NODE_ID EVENTS APPENDERS START_AT  # one node (internal)
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.suite.figures import Figure
from benchmarks.suite.postgres_figures import Cluster
from benchmarks.suite.store_figures import EVENT
from wingman.engine.store.database import create_engine, upgrade
from wingman.engine.store.event_store import EventStore

ROOT = Path(__file__).resolve().parents[2]
START_DELAY = 8.0  # seconds for every node's process to start, open its store and warm up


async def _node(url: str, node_id: str, count: int, callers: int, start_at: float) -> dict:
    engine = create_engine(url)
    store = EventStore(engine, node_id=node_id)
    await store.open()
    try:
        per = max(1, count // callers)
        streams = [f"{node_id}-s{n}" for n in range(callers)]
        await asyncio.gather(*(store.append(s, [EVENT]) for s in streams))  # the claims, untimed
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def caller(stream: str) -> None:
            for _ in range(per):
                await store.append(stream, [EVENT])

        before = store.commits
        t0 = time.time()
        await asyncio.gather(*(caller(s) for s in streams))
        t1 = time.time()
        return {
            "node": node_id,
            "events": per * callers,
            "start": t0,
            "end": t1,
            "late": max(0.0, t0 - start_at),
            "groups": store.commits - before,
        }
    finally:
        await store.close()
        await engine.dispose()


def _fleet(url: str, nodes: int, count: int, callers: int) -> dict:
    start_at = time.time() + START_DELAY
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.suite.fleet_figures", "node", url, f"bench-{nodes}-{i}-{time.time_ns()}"]
            + [str(count), str(callers), repr(start_at)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(nodes)
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"a node's process failed with status {p.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    events = sum(r["events"] for r in results)
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {
        "nodes": nodes,
        "events_per_second": events / span,
        "per_node": [r["events"] / (r["end"] - r["start"]) for r in results],
        "events": events,
        "seconds": span,
        "groups": sum(r["groups"] for r in results),
        "late_start_seconds": max(r["late"] for r in results),
    }


def fleet_figures(smoke: bool) -> list[Figure]:
    count, callers = (1000, 50) if smoke else (8000, 100)
    with Cluster() as cluster:
        asyncio.run(_migrate(cluster.url))
        alone_before = _fleet(cluster.url, 1, count, callers)
        fleets = {n: _fleet(cluster.url, n, count, callers) for n in (2, 4)}
        alone_after = _fleet(cluster.url, 1, count, callers)
    alone = (alone_before["events_per_second"] + alone_after["events_per_second"]) / 2
    return [
        Figure(
            f"appends, {n} nodes on one database, {callers} appenders each (PostgreSQL, fsync on)",
            r["events_per_second"],
            alone,
            "events/s",
            baseline_label="one node alone, the same appenders (mean of a run before and after)",
            raw={"fleet": r, "alone_before": alone_before, "alone_after": alone_after},
        )
        for n, r in fleets.items()
    ]


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "node":
    _, _, url, node_id, count, callers, start_at = sys.argv
    print(json.dumps(asyncio.run(_node(url, node_id, int(count), int(callers), float(start_at)))))
