"""How the power engine writes to the log.

- `append_now`: one try, for a request that is not accepted yet (the caller hears a 503 when the
  store cannot commit, and nothing runs).
- `record`: for events that follow an accepted request. They must reach the log, so they are
  retried while the store is unavailable (disk full): giving up would leave an operation without
  an outcome, or a running process in a server recorded as `starting`. Only `StoreUnavailable`
  is retried; anything else is a bug and goes to the caller at once.
- `transition`: a state change checked against the statechart under a per-server ordering, so two
  changes can never both pass the check from the same state. It raises IllegalTransition;
  `transition_if_allowed` is the explicit way to ask "only if the chart allows it now". The
  ordering is held until the change is committed even when the caller is cancelled (a kill
  cancels a start in the middle of its `ready`): the append goes on to the log regardless, and a
  change checked before it landed (the process's exit, from `starting`) would contradict it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable

import structlog

from wingman.engine.events import Event, Metadata, NewEvent, RecordedEvent, StateChanged
from wingman.engine.servers.registry import ServerRegistry
from wingman.engine.statechart import IllegalTransition, Trigger
from wingman.engine.store.event_store import EventStore, StoreUnavailable

log = structlog.get_logger("wingman.power")

RETRY_FIRST = 0.1  # seconds before the first retry of an append while the store is unavailable
RETRY_MAX = 5.0  # seconds between retries at most


class Journal:
    def __init__(self, store: EventStore, registry: ServerRegistry):
        self._store = store
        self._registry = registry
        self._ordering: dict[str, asyncio.Lock] = {}

    async def append_now(self, uuid: str, records: Iterable[Event], meta: Metadata) -> list[RecordedEvent]:
        return await self._store.append(uuid, NewEvent.all_of(records, meta))

    async def record(self, uuid: str, *records: Event, meta: Metadata) -> list[RecordedEvent]:
        delay = RETRY_FIRST
        while True:
            try:
                return await self._store.append(uuid, NewEvent.all_of(records, meta))
            except StoreUnavailable as exc:
                if delay == RETRY_FIRST:
                    log.error(
                        "event store unavailable; retrying until it takes the events",
                        server=uuid,
                        reason=str(exc),
                        types=[r.type for r in records],
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def transition(
        self,
        uuid: str,
        trigger: Trigger,
        cause: str,
        meta: Metadata,
        op_id: str | None = None,
        before: tuple[Event, ...] = (),
        now: bool = False,
    ) -> str:
        """Append a legal state change (after `before`, in the same commit); returns the new state.
        IllegalTransition, with nothing written, when the chart does not allow it now. `now`: one
        try, as `append_now` (a request not answered yet: StoreUnavailable goes to its caller)."""
        async with self._ordering.setdefault(uuid, asyncio.Lock()):
            view = self._registry.get(uuid)
            dest = view.power.destination(trigger)  # IllegalTransition, nothing written, when it may not fire
            await self._record_change(uuid, view.state, trigger, dest, cause, meta, op_id, before, now)
            return view.state

    async def transition_if_allowed(
        self,
        uuid: str,
        trigger: Trigger,
        cause: str,
        meta: Metadata,
        op_id: str | None = None,
        before: tuple[Event, ...] = (),
    ) -> bool:
        """Like `transition`, but when the chart does not allow it now only `before` is written
        and False comes back."""
        async with self._ordering.setdefault(uuid, asyncio.Lock()):
            view = self._registry.get(uuid)
            try:
                dest = view.power.destination(trigger)
            except IllegalTransition:
                if before:
                    await _to_the_end(self.record(uuid, *before, meta=meta))
                return False
            await self._record_change(uuid, view.state, trigger, dest, cause, meta, op_id, before)
            return True

    async def _record_change(
        self,
        uuid: str,
        source: str,
        trigger: Trigger,
        dest: str,
        cause: str,
        meta: Metadata,
        op_id: str | None,
        before: tuple[Event, ...],
        now: bool = False,
    ) -> None:
        """Append the change from `source` to `dest`, both as the position answered under the ordering."""
        change = StateChanged(from_state=source, to_state=dest, trigger=trigger, cause=cause, operation_id=op_id)
        meta = meta.model_copy(update={"cause": cause})
        await _to_the_end(
            self.append_now(uuid, [*before, change], meta) if now else self.record(uuid, *before, change, meta=meta)
        )

    def forget(self, uuid: str) -> None:
        self._ordering.pop(uuid, None)


async def _to_the_end(append: Awaitable[object]) -> None:
    """Await an append to its end even if the caller is cancelled meanwhile, then pass the
    cancellation on: the caller's ordering lock stays held until the events are in the log."""
    task = asyncio.ensure_future(append)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: what the cancelled caller hears is its cancellation
        raise asyncio.CancelledError()
    task.result()
