"""The running processes the power engine knows about: one handle, one exit watcher and one
console buffer per server, plus who is responsible for the next exit.

Exits are recorded by one watcher task per running process (the runtime's `wait()`), so stop,
kill and crashes share one path: the power engine awaits the watcher to know the exit is durable.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from engine.power.console import ConsoleBuffer, DoneMatcher
from engine.environments.base import ExitInfo, ProcessHandle

ExitRecorder = Callable[[str, ExitInfo, str, "str | None"], Awaitable[None]]


class ProcessTracker:
    def __init__(self, record_exit: ExitRecorder):
        self._record_exit = record_exit  # (uuid, info, cause, operation id) -> durable events
        self.consoles: dict[str, ConsoleBuffer] = {}
        self._handles: dict[str, ProcessHandle] = {}
        self._watchers: dict[str, asyncio.Task] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._exit_cause: dict[str, tuple[str, str | None]] = {}

    def console(self, uuid: str) -> ConsoleBuffer:
        return self.consoles.setdefault(uuid, ConsoleBuffer())

    def handle(self, uuid: str) -> ProcessHandle | None:
        """The live handle, or None when nothing runs."""
        h = self._handles.get(uuid)
        return h if h is not None and h.alive else None

    def running(self) -> list[tuple[str, ProcessHandle]]:
        return [(uuid, h) for uuid, h in self._handles.items() if h.alive]

    def readiness(self, uuid: str, matcher: DoneMatcher) -> tuple[asyncio.Event, Callable[[str], None]]:
        """A fresh ready flag and a console sink that raises it on a done-line."""
        ready = self._ready[uuid] = asyncio.Event()
        buffer = self.console(uuid)

        def sink(line: str) -> None:
            buffer.push(line)
            if not ready.is_set() and matcher.matches(line):
                ready.set()

        return ready, sink

    def plain_sink(self, uuid: str) -> Callable[[str], None]:
        """A console sink with no readiness watch (for adopted servers)."""
        return self.console(uuid).push

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

    def watcher(self, uuid: str) -> asyncio.Task:
        return self._watchers[uuid]

    async def _watch(self, uuid: str, handle: ProcessHandle) -> ExitInfo:
        info = await handle.wait()
        cause, operation_id = self._exit_cause.pop(uuid, ("exited", None))
        try:
            await self._record_exit(uuid, info, cause, operation_id)
        finally:
            if self._handles.get(uuid) is handle:
                del self._handles[uuid]
        return info

    async def close(self) -> None:
        for task in self._watchers.values():
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
