"""The event store's commits as the metrics see them: how many events each group held, and how
long from the group's rows being made (their `recorded_at`) to its commit being announced.

It subscribes to the store, whose subscribers run on the write path, so it does the least a
subscriber can: one clock read and two bucket increments per group, never per event, and
nothing that waits or can raise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wingman.engine.events import RecordedEvent
from wingman.engine.metrics.log_counts import Buckets

GROUP_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500)  # events; the store's group is at most 500
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class StoreWatch:
    def __init__(self) -> None:
        self.groups = Buckets(GROUP_BUCKETS)
        self.commit_seconds = Buckets(COMMIT_BUCKETS)
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, subscribe: Callable[[Callable[[list[RecordedEvent]], None]], Callable[[], None]]) -> None:
        self._unsubscribe = subscribe(self._on_commit)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_commit(self, events: list[RecordedEvent]) -> None:
        if not events:
            return
        self.groups.observe(len(events))
        self.commit_seconds.observe(max(0.0, time.time() - events[-1].recorded_at.timestamp()))
