"""One run of a schedule: its steps in order, each an ordinary power operation (actor
`system:schedule`, the schedule's and the run's ids in its metadata) or a line written to the
console, each waiting for the previous one's outcome and run only when it succeeded. The run's
outcome is recorded once: succeeded, failed (which step, why), or cancelled (an operator's kill).
A run the daemon's own stop cuts short records nothing: the next boot finds it and records it
abandoned (engine.schedules.scheduler)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from wingman.engine.event_types import Cause
from wingman.engine.events import ConsoleCommand, Event, Metadata, RecordedEvent
from wingman.engine.power.outcomes import ServerInstalling, SuspendedServer
from wingman.engine.power.processes import ProcessTracker
from wingman.engine.power.service import MAX_WAIT, PowerService
from wingman.engine.schedules.conditions import ACTOR
from wingman.engine.schedules.events import ScheduleFired, ScheduleRunFinished
from wingman.engine.schedules.model import Step
from wingman.engine.servers.registry import ServerRegistry, UnknownServer

Record = Callable[[str, Event, Metadata], Awaitable[list[RecordedEvent]]]
T = TypeVar("T")
SCHEDULE_META = Metadata(actor=ACTOR, channel="schedule", cause=Cause.SCHEDULE)


@dataclass
class Run:
    server: str
    schedule_id: str
    run_id: str
    due: str
    steps: list[Step]
    missed: bool = False
    cancel_reason: str | None = None  # set by an operator's kill before the run's task is cancelled
    cancelled_by: str | None = None
    operation_id: str | None = None  # the operation of the step at work
    task: asyncio.Task[Any] | None = None

    @property
    def meta(self) -> Metadata:
        return SCHEDULE_META.model_copy(update={"schedule_id": self.schedule_id, "run_id": self.run_id})


class Runner:
    def __init__(self, power: PowerService, registry: ServerRegistry, processes: ProcessTracker, record: Record):
        self.power = power
        self.registry = registry
        self.processes = processes
        self.record = record

    async def run(self, run: Run) -> None:
        meta = run.meta
        fired = ScheduleFired(
            schedule_id=run.schedule_id, run_id=run.run_id, due=run.due, steps=len(run.steps), missed=run.missed
        )
        done = 0
        try:
            await _durable(self.record(run.server, fired, meta))
            for i, step in enumerate(run.steps):
                if run.cancel_reason is not None:
                    raise asyncio.CancelledError()
                failure = await self._step(run, step, meta.model_copy(update={"step": i}))
                if failure is not None:
                    await self._finish(run, "failed", done, f"step {i + 1} ({step.action}): {failure}")
                    return
                done += 1
        except asyncio.CancelledError:
            if run.cancel_reason is None:  # the daemon stops: the next boot records the run abandoned
                raise
            await self._finish(run, "cancelled", done, run.cancel_reason, run.cancelled_by)
            return
        await self._finish(run, "succeeded", done, None)

    async def _finish(
        self, run: Run, outcome: str, done: int, reason: str | None, operation_id: str | None = None
    ) -> None:
        finished = ScheduleRunFinished.model_validate(
            {
                "schedule_id": run.schedule_id,
                "run_id": run.run_id,
                "outcome": outcome,
                "steps_done": done,
                "reason": reason,
                "operation_id": operation_id or (run.operation_id if outcome != "succeeded" else None),
            }
        )
        await _durable(self.record(run.server, finished, run.meta))

    async def _step(self, run: Run, step: Step, meta: Metadata) -> str | None:
        """Run one step to its outcome: None when it succeeded, else why not."""
        if step.action == "command":
            return await self._command(run.server, step.command or "", meta)
        try:
            # The longest wait for the power lock Wings allows: a scheduled restart queues behind
            # an operator's start rather than being refused.
            op = await _durable(self.power.request(run.server, step.action, MAX_WAIT, meta))
        except (SuspendedServer, ServerInstalling) as exc:
            return str(exc)
        except UnknownServer:
            return "the server is gone"
        run.operation_id = op.id
        await self.power.settled(op.id)
        settled = self.registry.operation_in_memory(op.id) or (await self.registry.find_operation(op.id))[0]
        status = settled.status if settled is not None else "unknown"
        if status != "succeeded":
            reason = settled.reason if settled is not None else None
            return f"operation {op.id} {status}" + (f": {reason}" if reason else "")
        return None

    async def _command(self, server: str, line: str, meta: Metadata) -> str | None:
        if self.processes.handle(server) is None:
            return "no process is running to write the command to"
        await _durable(self.record(server, ConsoleCommand(command=line), meta))
        try:
            await self.processes.send_command(server, line)
        except Exception as exc:  # noqa: BLE001 - the process went away between the look and the write
            return f"the command could not be written: {exc}"
        return None


async def _durable(work: Awaitable[T]) -> T:
    """`work` to its end even when the run is cancelled meanwhile (an operator's kill): a request
    or an event half written would be an operation without its outcome. The cancellation reaches
    the run once it is done. (A step requested in the moment the kill is being written still runs,
    after the kill: the run ends there, cancelled.)"""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            await asyncio.wait([task])
        raise
