"""The node's metrics as Prometheus families (docs/metrics.md): the log's counters and histograms
(log_counts), the store's commits (store_watch), and what is true now (servers by state, each
server's utilization, the checkpoints, the Panel's outboxes, the log's size, the build).

`refresh()` brings the log's figures up to date (it reads the database: on the event loop, once
per scrape); `collect()` only reads what is in memory, so a registry may be collected from another
thread (the separate metrics listener) while the loop runs.
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.metrics.log_counts import Buckets, LogCounts
from wingman.engine.metrics.store_watch import StoreWatch

PREFIX = "wingman_"


class Utilization(Protocol):
    def document(self, uuid: str) -> Mapping[str, Any]: ...
    def cpu_seconds(self, uuid: str) -> float: ...


class Checkpoints(Protocol):
    @property
    def uncovered(self) -> int: ...

    last: Any

    def witness_counts(self) -> list[tuple[str, int, dict[str, int]]]: ...


@dataclass
class Sources:
    """What the node's metrics read, handed over by the daemon's façade (engine.node)."""

    db: AsyncEngine
    subscribe: Callable[..., Callable[[], None]]
    servers: Callable[[], Mapping[str, Any]]  # uuid -> view (with .state)
    states: list[str]  # every state of the chart: a state no server is in is a 0, not a gap
    utilization: Utilization
    checkpoints: Checkpoints
    outbox_positions: Callable[[], dict[str, int]]  # outbox name -> position it has sent up to
    failed_commits: Callable[[], int]  # groups the store could not commit
    database_file: Path | None  # SQLite's file (None on PostgreSQL: the database says its size)
    per_server: bool
    node_id: str | None = None  # in a fleet's database, count this node's events


class NodeMetrics(Collector):
    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.counts = LogCounts(sources.db, sources.node_id)
        self.store = StoreWatch()
        self.log_bytes: float = 0.0
        self.extra: list[Callable[[], Iterator[Metric]]] = []  # the API's own families (sockets, streams)

    async def start(self) -> None:
        """Watch the store's commits, then sum the log once: from here on every commit is counted
        as it is announced, and the histograms see every operation requested."""
        self.store.attach(self.sources.subscribe)
        self.counts.attach(self.sources.subscribe)
        await self.counts.prime()
        await self.refresh()

    def stop(self) -> None:
        self.store.detach()
        self.counts.detach()

    async def refresh(self) -> None:
        """What is read at a scrape: only the log's size (the counters are current already)."""
        self.log_bytes = await self._log_bytes()

    async def _log_bytes(self) -> float:
        file = self.sources.database_file
        if file is not None:  # the database and its write-ahead log
            return float(sum(p.stat().st_size for p in (file, Path(f"{file}-wal")) if p.exists()))
        async with self.sources.db.connect() as conn:
            size = (await conn.execute(text("SELECT pg_total_relation_size('events')"))).scalar()
        return float(size or 0)

    # -- the families --------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        yield from self._log_families()
        yield from self._store_families()
        yield from self._now_families()
        for extra in self.extra:
            yield from extra()

    def _log_families(self) -> Iterator[Metric]:
        c = self.counts
        ops = CounterMetricFamily(
            PREFIX + "power_operations",
            "Power operations by action and outcome (from the log)",
            labels=["action", "outcome"],
        )
        for (action, outcome), n in sorted(c.operations.items()):
            ops.add_metric([action, outcome], n)
        yield ops
        durations = HistogramMetricFamily(
            PREFIX + "power_operation_duration_seconds",
            "From a power request to its outcome, by action (operations requested since the daemon started)",
            labels=["action"],
        )
        for action, buckets in sorted(c.durations.items()):
            durations.add_metric([action], buckets.cumulative(), buckets.total)
        yield durations
        yield _histogram(
            PREFIX + "power_lock_wait_seconds",
            "From a power request to its operation taking the server's power lock",
            c.lock_waits,
        )
        if self.sources.per_server:
            crashes = CounterMetricFamily(
                PREFIX + "server_crashes", "Crashes, by server (from the log)", labels=["server"]
            )
            for server, n in sorted(c.crashes.items()):
                crashes.add_metric([server], n)
            yield crashes
        else:
            yield CounterMetricFamily(
                PREFIX + "server_crashes", "Crashes (from the log)", value=sum(c.crashes.values())
            )
        decisions = CounterMetricFamily(
            PREFIX + "crash_decisions", "What the crash policy decided after a crash", labels=["decision"]
        )
        for decision in ("restart", "stay_down"):
            decisions.add_metric([decision], c.decisions[decision])
        yield decisions
        restarts = CounterMetricFamily(
            PREFIX + "restarts", "Restart operations requested, by cause (operator, panel, crash...)", labels=["cause"]
        )
        for cause, n in sorted(c.restarts.items()):
            restarts.add_metric([cause], n)
        yield restarts
        yield CounterMetricFamily(PREFIX + "store_events", "Events appended to the log", value=c.events)

    def _store_families(self) -> Iterator[Metric]:
        yield _histogram(
            PREFIX + "store_commit_group_events",
            "Events in each group the store committed as one transaction (since the daemon started)",
            self.store.groups,
        )
        yield _histogram(
            PREFIX + "store_commit_latency_seconds",
            "From a group's events being recorded to its commit being announced",
            self.store.commit_seconds,
        )
        yield GaugeMetricFamily(PREFIX + "store_log_bytes", "Size of the event log on disk", value=self.log_bytes)
        yield CounterMetricFamily(
            PREFIX + "store_commit_failures",
            "Groups of events the database did not commit (since the daemon started)",
            value=self.sources.failed_commits(),
        )

    def _now_families(self) -> Iterator[Metric]:
        s = self.sources
        views = dict(s.servers())
        by_state = Counter(view.state for view in views.values())
        states = GaugeMetricFamily(PREFIX + "servers", "Servers on the node by power state", labels=["state"])
        for state in s.states:
            states.add_metric([state], by_state[state])
        yield states
        if s.per_server:
            yield from self._per_server(views)
        checkpoints = s.checkpoints
        yield GaugeMetricFamily(
            PREFIX + "checkpoint_uncovered_events",
            "Events committed but not yet covered by a signed checkpoint",
            value=checkpoints.uncovered,
        )
        signed_at = _checkpoint_time(checkpoints.last)
        if signed_at is not None:
            yield GaugeMetricFamily(
                PREFIX + "checkpoint_last_timestamp_seconds",
                "When the last signed checkpoint was made (Unix time)",
                value=signed_at,
            )
            yield GaugeMetricFamily(
                PREFIX + "checkpoint_age_seconds",
                "Seconds since the last signed checkpoint",
                value=time.time() - signed_at,
            )
        yield from _witness_families(checkpoints.witness_counts())
        behind = GaugeMetricFamily(
            PREFIX + "panel_outbox_behind_events",
            "Events in the log after the position a Panel outbox has delivered up to",
            labels=["outbox"],
        )
        for name, position in sorted(s.outbox_positions().items()):
            behind.add_metric([name], max(0, self.counts.position - position))
        yield behind
        info = InfoMetricFamily(PREFIX + "build", "The running wingman")
        info.add_metric([], {"version": _version(), "python": platform.python_version()})
        yield info

    def _per_server(self, views: dict[str, Any]) -> Iterator[Metric]:
        labels = ["server"]
        memory = GaugeMetricFamily(
            PREFIX + "server_memory_bytes", "Resident memory of a server's processes", labels=labels
        )
        cpu = CounterMetricFamily(PREFIX + "server_cpu_seconds", "CPU time of a server's processes", labels=labels)
        disk = GaugeMetricFamily(PREFIX + "server_disk_bytes", "Size of a server's folder", labels=labels)
        uptime = GaugeMetricFamily(
            PREFIX + "server_uptime_seconds", "Seconds since the server's process started", labels=labels
        )
        utilization = self.sources.utilization
        for uuid in sorted(views):
            doc = utilization.document(uuid)
            memory.add_metric([uuid], doc.get("memory_bytes", 0))
            cpu.add_metric([uuid], utilization.cpu_seconds(uuid))
            disk.add_metric([uuid], doc.get("disk_bytes", 0))
            uptime.add_metric([uuid], doc.get("uptime", 0) / 1000)
        yield from (memory, cpu, disk, uptime)


def _histogram(name: str, documentation: str, buckets: Buckets) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, documentation, buckets=buckets.cumulative(), sum_value=buckets.total)


def _witness_families(counts: list[tuple[str, int, dict[str, int]]]) -> Iterator[Metric]:
    """The cosigning witnesses' answers since the daemon started (none configured: no series)."""
    cosigned = CounterMetricFamily(
        PREFIX + "checkpoint_cosignatures", "Cosignatures received from each cosigning witness", labels=["witness"]
    )
    refused = CounterMetricFamily(
        PREFIX + "checkpoint_witness_refusals",
        "Checkpoints a cosigning witness did not cosign, by its answer's status (or unreachable)",
        labels=["witness", "status"],
    )
    for witness, received, refusals in counts:
        cosigned.add_metric([witness], received)
        for status, n in sorted(refusals.items()):
            refused.add_metric([witness, status], n)
    yield cosigned
    yield refused


def _checkpoint_time(last: Any) -> float | None:
    if last is None:
        return None
    when = last.body.get("time")
    try:
        return datetime.fromisoformat(str(when).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _version() -> str:
    try:
        return version("wingman")
    except PackageNotFoundError:
        return "unknown"
