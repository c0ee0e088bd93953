"""The running processes the power engine knows about: one handle, one exit watcher and one
console buffer per server, plus who is responsible for the next exit.

Exits are recorded by one watcher task per running process (the runtime's `wait()`), so stop,
kill and crashes share one path: the power engine awaits the watcher to know the exit is durable.
An exit seen but not committed yet (the store cannot write: disk full) is an `exit_pending`, with
the moment it was seen: the state stays what the log says until the commit, and this says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from wingman.engine.console.buffer import ConsoleBuffer
from wingman.engine.console.readiness import DoneMatcher
from wingman.engine.environments.base import ExitInfo, ProcessHandle
from wingman.engine.event_types import Cause
from wingman.engine.events import Metadata, ProcessExited
from wingman.engine.power.journal import Journal
from wingman.engine.statechart import Trigger
from wingman.engine.store.event_store import StoreClosed

log = structlog.get_logger("wingman.power")


class NotRunning(Exception):
    """The server has no running process."""


# Told of every exit once it is recorded: (server, how it ended, whose exit it was, operation).
ExitListener = Callable[[str, ExitInfo, str, "str | None"], Awaitable[None]]
UNCLAIMED = Cause.EXITED  # the cause of an exit nobody asked for (no stop, kill or shutdown)


class ProcessTracker:
    def __init__(self, journal: Journal):
        self._journal = journal
        self._exit_listeners: list[ExitListener] = []
        self._consoles: dict[str, ConsoleBuffer] = {}
        self._handles: dict[str, ProcessHandle] = {}
        self._watchers: dict[str, asyncio.Task[ExitInfo]] = {}
        self._exit_cause: dict[str, tuple[str, str | None]] = {}
        self._exits_pending: dict[str, ProcessExited] = {}  # seen, not committed yet

    # -- consoles ------------------------------------------------------------------------------

    def console(self, uuid: str) -> ConsoleBuffer:
        return self._consoles.setdefault(uuid, ConsoleBuffer())

    def console_tail(self, uuid: str, lines: int) -> list[str]:
        buffer = self._consoles.get(uuid)
        return buffer.tail(lines) if buffer is not None else []

    def note(self, uuid: str, text: str) -> None:
        """A note of the daemon's about the server, to whoever listens to its console (not kept in its logs)."""
        self.console(uuid).note(text)

    def forget_console(self, uuid: str) -> None:
        """A deleted server's console goes with it."""
        self._consoles.pop(uuid, None)

    async def send_command(self, uuid: str, text: str) -> None:
        """Write one line to the server's console; NotRunning when nothing runs."""
        handle = self.handle(uuid)
        if handle is None:
            raise NotRunning(uuid)
        await handle.send_command(text)

    def readiness(self, uuid: str, matcher: DoneMatcher) -> tuple[asyncio.Event, Callable[[str], None]]:
        """A fresh ready flag and a console sink that raises it on a done-line."""
        ready = asyncio.Event()
        buffer = self.console(uuid)

        def sink(line: str) -> None:
            buffer.push(line)
            if not ready.is_set() and matcher.matches(line):
                ready.set()

        return ready, sink

    async def ready_or_exited(self, uuid: str, ready: asyncio.Event) -> bool:
        """Wait for the done-line (`ready`) or the exit of the server's process, whichever comes
        first; True when it was the done-line."""
        waiting = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait([waiting, self._watchers[uuid]], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        return ready.is_set()

    def plain_sink(self, uuid: str) -> Callable[[str], None]:
        """A console sink with no readiness watch (for adopted servers)."""
        return self.console(uuid).push

    # -- processes -----------------------------------------------------------------------------

    def handle(self, uuid: str) -> ProcessHandle | None:
        """The live handle, or None when nothing runs."""
        h = self._handles.get(uuid)
        return h if h is not None and h.alive else None

    def running(self) -> list[tuple[str, ProcessHandle]]:
        return [(uuid, h) for uuid, h in self._handles.items() if h.alive]

    def on_exit(self, listener: ExitListener) -> None:
        """Call `listener` after each exit is recorded (in a task of its own: it cannot delay
        the exit's own path, and its failure is logged, not spread)."""
        self._exit_listeners.append(listener)

    def expect_exit(self, uuid: str, cause: str, operation_id: str | None = None) -> None:
        """Say who the next exit belongs to (a stop, a kill, a start that may fail)."""
        self._exit_cause[uuid] = (cause, operation_id)

    def forget_exit(self, uuid: str, operation_id: str) -> None:
        if self._exit_cause.get(uuid, (None, None))[1] == operation_id:
            del self._exit_cause[uuid]

    def track(self, uuid: str, handle: ProcessHandle) -> None:
        self._handles[uuid] = handle
        self._watchers[uuid] = asyncio.create_task(self._watch(uuid, handle), name=f"watch-{uuid}")

    async def exited(self, uuid: str) -> ExitInfo:
        """Resolve once the current process's exit is recorded (never cancels the watcher)."""
        return await asyncio.shield(self._watchers[uuid])

    def watcher(self, uuid: str) -> asyncio.Task[ExitInfo]:
        return self._watchers[uuid]

    def exit_pending(self, uuid: str) -> dict[str, Any] | None:
        """The exit of the server's process as seen, while it waits for its commit; None when
        there is none (nothing exited, or the exit is in the log)."""
        exited = self._exits_pending.get(uuid)
        return None if exited is None else exited.model_dump(mode="json")

    async def _watch(self, uuid: str, handle: ProcessHandle) -> ExitInfo:
        info = await handle.wait()
        exited = ProcessExited(
            exit_code=info.exit_code,
            signal=info.signal,
            oom_killed=info.oom_killed,
            reason=info.reason,
            observed_at=datetime.now(UTC),
        )
        self._exits_pending[uuid] = exited
        cause, operation_id = self._exit_cause.pop(uuid, (UNCLAIMED, None))
        try:
            await self._record_exit(uuid, exited, cause, operation_id)
        except StoreClosed:  # the daemon is going down: the next boot finds the process gone
            log.info("process exit not recorded: the event store is closed", server=uuid)
            return info
        finally:
            # After the commit, whose subscribers have already folded it: the view shows the exit
            # before this stops saying it is pending.
            if self._exits_pending.get(uuid) is exited:
                del self._exits_pending[uuid]
            if self._handles.get(uuid) is handle:
                del self._handles[uuid]
        for listener in self._exit_listeners:
            asyncio.create_task(_told(listener, uuid, info, cause, operation_id), name=f"exit-{uuid}")
        return info

    async def _record_exit(self, uuid: str, exited: ProcessExited, cause: str, op_id: str | None) -> None:
        meta = Metadata(actor="daemon", channel="internal", operation_id=op_id, cause=cause)
        # The exit is a fact whatever the state: it is recorded even when the state change is not
        # allowed any more (the server was already taken offline by another path).
        await self._journal.transition_if_allowed(uuid, Trigger.EXITED, cause, meta, op_id, before=(exited,))

    async def close(self) -> None:
        for task in self._watchers.values():
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)


async def _told(listener: ExitListener, uuid: str, info: ExitInfo, cause: str, operation_id: str | None) -> None:
    try:
        await listener(uuid, info, cause, operation_id)
    except Exception:
        log.exception("an exit listener failed", server=uuid)
