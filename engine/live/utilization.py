"""Resource utilization as Wings reports it: `utilization` in `GET /api/servers/{uuid}` and the
websocket's `stats` frames.

One background task samples every server that has a live process, every `interval_seconds`, in
one worker thread of its own (psutil reads /proc: blocking, but quick): no thread per server or
container, nothing on the event loop, nothing on a request's path. Requests and sockets get the
last sample; `uptime` alone is computed at the moment it is asked for, from the process's start
time. A server whose process has just started is read at once (on its `process.started`), and again
when it is ready (the `ready` transition, so that a `stats` beside the new state goes out at once),
not at the next round: its first figures come within moments of the start, as Wings has them,
instead of zeros beside `running` for up to one interval. Listeners of a server (its websockets) are
handed each new document as it is made, and one document of zeros once its stop is in the log.

When a server has no live process, its figures are zeros beside its state, as in Wings: memory,
CPU, network and uptime; `memory_limit_bytes` (configuration) and `disk_bytes` (the folder does
not go away with the process) keep their values, as Wings keeps them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from wingman.engine.config import UtilizationConfig
from wingman.engine.event_types import EventType
from wingman.engine.events import RecordedEvent
from wingman.engine.live.disk import DiskUsage
from wingman.engine.live.feed import EventFeed
from wingman.engine.live.sampling import Reading, cpu_percent, group_members, host_memory, network_namespace, read
from wingman.engine.power.processes import ProcessTracker
from wingman.engine.servers.registry import ServerRegistry
from wingman.engine.statechart import Trigger

log = structlog.get_logger("wingman.live")

MIB = 1024 * 1024
Document = dict[str, Any]
StatsListener = Callable[[Document], None]


def _read_all(running: list[tuple[str, int]], host_netns: str | None) -> dict[str, Reading | None]:
    """In the worker thread: one reading per running server, with one pass over /proc for groups."""
    groups = group_members({pid for _, pid in running})
    return {uuid: read(pid, groups.get(pid, set()), host_netns) for uuid, pid in running}


class UtilizationMonitor:
    def __init__(
        self,
        registry: ServerRegistry,
        processes: ProcessTracker,
        folder: Callable[[str], Path],
        config: UtilizationConfig,
        feed: EventFeed,
    ):
        self.registry = registry
        self.processes = processes
        self.interval = config.interval_seconds
        self.disk = DiskUsage(folder, lambda: list(registry.views), config.disk_interval_seconds)
        self._feed = feed
        self._readings: dict[str, Reading] = {}
        self._cpu: dict[str, float] = {}
        self._started: dict[str, float] = {}  # server -> when its process started, from the log
        self._listeners: dict[str, list[StatsListener]] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="wingman-utilization")
        self._host_netns = network_namespace()
        self._host_memory = host_memory()
        self._task: asyncio.Task[None] | None = None
        self._first_samples: dict[str, asyncio.Task[None]] = {}  # server -> its first sample, under way
        self._stop_feed: Callable[[], None] | None = None
        self.samples = 0  # sampling rounds done (tests wait on it instead of sleeping)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._stop_feed = self._feed.listen(self._on_event)
        self._task = asyncio.create_task(self._run(), name="utilization")
        self.disk.start()

    async def stop(self) -> None:
        if self._stop_feed is not None:
            self._stop_feed()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in list(self._first_samples.values()):
            task.cancel()
        await asyncio.gather(*self._first_samples.values(), return_exceptions=True)
        await self.disk.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- what callers read ---------------------------------------------------------------------

    def document(self, uuid: str) -> Document:
        """The server's utilization now (UnknownServer for a server that is not on the node)."""
        view = self.registry.get(uuid)
        limit_mib = view.config.memory_limit if view.config is not None else 0
        doc: Document = {
            "memory_bytes": 0,
            "memory_limit_bytes": limit_mib * MIB if limit_mib else self._host_memory,
            "cpu_absolute": 0.0,
            "network": {"rx_bytes": 0, "tx_bytes": 0},
            "uptime": 0,
            "state": view.state,
            "disk_bytes": self.disk.size(uuid),
        }
        handle = self.processes.handle(uuid)
        if handle is None:
            return doc
        reading = self._readings.get(uuid)
        if reading is not None and reading.pid == handle.pid:
            doc["memory_bytes"] = reading.memory_bytes
            doc["cpu_absolute"] = self._cpu.get(uuid, 0.0)
            doc["network"] = {"rx_bytes": reading.rx_bytes, "tx_bytes": reading.tx_bytes}
            started = reading.started_at
        else:  # not sampled yet: the start time the log has
            started = self._started.get(uuid)
        if started is not None:
            doc["uptime"] = max(0, int((time.time() - started) * 1000))
        return doc

    def cpu_seconds(self, uuid: str) -> float:
        """CPU time (user and system) of the server's processes at the last sample (0 without
        a process), for the metrics' counter."""
        handle = self.processes.handle(uuid)
        reading = self._readings.get(uuid)
        if handle is None or reading is None or reading.pid != handle.pid:
            return 0.0
        return sum(reading.cpu.values())

    def listen(self, uuid: str, listener: StatsListener) -> Callable[[], None]:
        """Hand `listener` each new document of this server; it must only enqueue."""
        bucket = self._listeners.setdefault(uuid, [])
        bucket.append(listener)

        def stop() -> None:
            if listener in bucket:
                bucket.remove(listener)
            if not bucket and self._listeners.get(uuid) is bucket:
                del self._listeners[uuid]

        return stop

    # -- sampling ------------------------------------------------------------------------------

    def _on_event(self, ev: RecordedEvent) -> None:
        if ev.type == EventType.PROCESS_STARTED:
            self._started[ev.stream_id] = ev.recorded_at.timestamp()
            self._sample_now(ev.stream_id)
        elif ev.type == EventType.STATE_CHANGED and ev.data.get("trigger") == Trigger.READY:
            # A `stats` beside `running` at once, without reading /proc again when there is a
            # reading (from the start's own sample or a round since): each read walks every
            # process of the machine in the sampler's thread, and a second one per start showed
            # in the kill latency of a start followed at once by a kill (p99 5 -> 11 ms).
            if ev.stream_id in self._first_samples:
                pass  # the start's sample is under way: it publishes when done, beside `running`
            elif ev.stream_id in self._readings:
                self._publish(ev.stream_id)
            else:
                self._sample_now(ev.stream_id)
        elif ev.type == EventType.STATE_CHANGED and ev.data.get("to_state") == self.registry.chart.initial:
            # The zeros of a stopped server go out once its stop is in the log, so they say
            # offline: the process is gone a moment before its exit is committed, and zeros sent
            # by the sampler in that moment said `running` beside them.
            self._readings.pop(ev.stream_id, None)
            self._cpu.pop(ev.stream_id, None)
            self._publish(ev.stream_id)
        elif ev.type == EventType.SERVER_DELETED:
            self._started.pop(ev.stream_id, None)
            self._readings.pop(ev.stream_id, None)
            self._cpu.pop(ev.stream_id, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.sample(loop)
            except Exception:
                log.exception("a utilization sample failed")
            await asyncio.sleep(self.interval)

    def _sample_now(self, uuid: str) -> None:
        if uuid in self._first_samples:
            return
        task = asyncio.create_task(self._first_sample(uuid), name=f"utilization-first-{uuid}")
        self._first_samples[uuid] = task
        task.add_done_callback(
            lambda done: self._first_samples.pop(uuid, None) if self._first_samples.get(uuid) is done else None
        )

    async def _first_sample(self, uuid: str) -> None:
        try:
            await self.sample(only=uuid)
        except Exception:
            log.exception("the first utilization sample of a server failed", server=uuid)

    async def sample(self, loop: asyncio.AbstractEventLoop | None = None, only: str | None = None) -> None:
        """One round: read every running server (or only the one named), then tell its listeners."""
        loop = loop or asyncio.get_running_loop()
        running = [(uuid, h.pid) for uuid, h in self.processes.running() if h.pid and only in (None, uuid)]
        if only is not None and not running:
            return
        readings = await loop.run_in_executor(self._pool, _read_all, running, self._host_netns)
        for uuid, reading in readings.items():
            if reading is None:
                continue
            previous = self._readings.get(uuid)
            if previous is not None and previous.pid == reading.pid and previous.taken_at >= reading.taken_at:
                continue  # a round that began before a newer reading of this server was stored
            self._cpu[uuid] = cpu_percent(previous, reading)
            self._readings[uuid] = reading
        if only is not None:
            if readings.get(only) is not None:
                self._publish(only)
            return
        for uuid in set(self._readings) - {uuid for uuid, _ in running}:  # gone: zeros from now on
            del self._readings[uuid]
            self._cpu.pop(uuid, None)
        self.samples += 1
        for uuid, reading in readings.items():  # a stopped server's zeros: see _on_event
            if reading is not None:
                self._publish(uuid)

    def _publish(self, uuid: str) -> None:
        listeners = self._listeners.get(uuid)
        if not listeners or uuid not in self.registry.views:
            return
        doc = self.document(uuid)
        for listener in list(listeners):
            try:
                listener(doc)
            except Exception:
                log.exception("a utilization listener failed", server=uuid)
