"""Committed events fanned out from the store's one subscription to many consumers.

The store calls its subscribers on the writer's own turn of the loop, before the appenders resume:
whatever a subscriber does there, every append waits for. So the feed does the least it can per
event: it finds the consumers that want it (indexed by server, so a commit on one server touches
only that server's watchers, not the 1,000 sockets of another) and hands the event over, and each
consumer bounds itself:

- a *listener* is a plain callback that may only enqueue (a websocket puts a frame into its own
  bounded outbox and closes itself when that overflows);
- a `Tail` is a bounded queue its owner drains at its own pace. When it overflows it stops taking
  events and says so; nothing is lost, because the log has every event and the owner goes back to
  reading it (see `engine.live.follow`).

A consumer that raises is logged and kept: one faulty watcher must not cost the others their events.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import structlog

from wingman.engine.events import RecordedEvent
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.queries import EventFilter

log = structlog.get_logger("wingman.live")

Listener = Callable[[RecordedEvent], None]


class TailOverflowed(Exception):
    """The tail's owner fell more than its capacity behind; it must read the log again."""


class Tail:
    """Every matching event committed after `start`, in commit order, up to `capacity` waiting."""

    def __init__(self, start: int, capacity: int, flt: EventFilter | None, detach: Callable[[], None]):
        self.start = start  # the store's last position when the tail was attached
        self.capacity = capacity
        self.filter = flt
        self.overflowed = False
        self._events: deque[RecordedEvent] = deque()
        self._wakeup = asyncio.Event()
        self._detach: Callable[[], None] | None = detach

    def offer(self, ev: RecordedEvent) -> None:
        if self.overflowed or (self.filter is not None and not self.filter.matches(ev)):
            return
        if len(self._events) >= self.capacity:
            # Drop what is held and stop taking more: the owner re-reads the log from its cursor,
            # so memory stays bounded and nothing is skipped.
            self.overflowed = True
            self._events.clear()
            self.close()
        else:
            self._events.append(ev)
        self._wakeup.set()

    async def next_batch(self, timeout: float | None = None) -> list[RecordedEvent] | None:
        """The events waiting (at least one), or None when `timeout` passed without any.
        Raises TailOverflowed once the tail has overflowed."""
        while not self._events:
            if self.overflowed:
                raise TailOverflowed()
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return None
        batch = list(self._events)
        self._events.clear()
        return batch

    def close(self) -> None:
        detach, self._detach = self._detach, None
        if detach is not None:
            detach()


class EventFeed:
    def __init__(self, store: EventStore):
        self.store = store
        self._by_stream: dict[str, list[Listener]] = {}
        self._everywhere: list[Listener] = []
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Follow the store. Call after the registry subscribed, so that a consumer reading a view
        while it is handed an event sees the view with that event folded in."""
        if self._unsubscribe is None:
            self._unsubscribe = self.store.subscribe(self._on_commit)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @property
    def last_position(self) -> int:
        """Every event up to here has been handed to the consumers attached at the time."""
        return self.store.last_position

    def listen(self, listener: Listener, stream_id: str | None = None) -> Callable[[], None]:
        """Call `listener(event)` for each committed event (of one stream, or of all); returns
        the way to stop. The listener runs inside the store's commit: it must only enqueue."""
        bucket = self._everywhere if stream_id is None else self._by_stream.setdefault(stream_id, [])
        bucket.append(listener)

        def stop() -> None:
            if listener in bucket:
                bucket.remove(listener)
            if stream_id is not None and not bucket and self._by_stream.get(stream_id) is bucket:
                del self._by_stream[stream_id]

        return stop

    def tail(self, capacity: int, flt: EventFilter | None = None) -> Tail:
        """A bounded queue of the matching events committed from now on (after `tail.start`)."""
        holder: list[Tail] = []
        stop = self.listen(lambda ev: holder[0].offer(ev), flt.stream_id if flt is not None else None)
        tail = Tail(self.last_position, capacity, flt, stop)
        holder.append(tail)
        return tail

    def _on_commit(self, events: list[RecordedEvent]) -> None:
        for ev in events:
            for listener in (*self._by_stream.get(ev.stream_id, ()), *self._everywhere):
                try:
                    listener(ev)
                except Exception:
                    log.exception(
                        "a live consumer failed on an event; it is kept and the others go on",
                        stream=ev.stream_id,
                        position=ev.position,
                        type=ev.type,
                    )
