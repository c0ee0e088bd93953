"""The scheduler: keeps every server's schedules (engine.schedules.book), fires each when its
cron expression comes due on the injected clock (engine.schedules.clock), checks its conditions
and runs it (engine.schedules.runner).

- Boot: the schedule events are folded from the log; a run that began without an outcome (the
  daemon stopped or was killed during it) is recorded `abandoned`, its remaining steps never run
  (its operation in flight gets its own outcome from the power engine's boot recovery); each
  definition's `schedules:` is compared with what the log holds; runs due while the daemon was
  down are counted and the schedule's `missed` policy decides (`skip`, or `run_once` now).
- An operator's (or the Panel's) kill of a server cancels its schedules' runs at work.
- A definition that changes its `schedules:` adds and removes those it lists; the API's own
  schedules are left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import structlog

from wingman.engine.event_types import EventType
from wingman.engine.events import Event, Metadata, RecordedEvent, new_id
from wingman.engine.power.journal import Journal
from wingman.engine.power.processes import ProcessTracker
from wingman.engine.power.service import PowerService
from wingman.engine.schedules.book import Book, Entry
from wingman.engine.schedules.clock import Clock, clock_from_environment
from wingman.engine.schedules.conditions import ACTOR, OPERATOR_CAUSES, operator_problem, state_problem
from wingman.engine.schedules.events import (
    ScheduleAdded,
    ScheduleMissed,
    ScheduleRemoved,
    ScheduleRunFinished,
    ScheduleSkipped,
    Source,
)
from wingman.engine.schedules.model import NEVER, InvalidSchedule, Schedule, parse_schedules
from wingman.engine.schedules.runner import SCHEDULE_META, Run, Runner
from wingman.engine.servers.registry import ServerRegistry, UnknownServer
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.queries import EventFilter, iterate

log = structlog.get_logger("wingman.schedules")
MISSED_COUNTED = 1000  # due times counted at most for one schedule at boot
ABANDONED = "the daemon stopped during the run: its remaining steps are not run"
# Read at boot by exact type (the log's type index), not by a prefix a LIKE would scan the log for.
SCHEDULE_TYPES = (
    EventType.SCHEDULE_ADDED,
    EventType.SCHEDULE_REMOVED,
    EventType.SCHEDULE_FIRED,
    EventType.SCHEDULE_SKIPPED,
    EventType.SCHEDULE_MISSED,
    EventType.SCHEDULE_RUN_FINISHED,
)


class Scheduler:
    def __init__(
        self,
        store: EventStore,
        registry: ServerRegistry,
        power: PowerService,
        journal: Journal,
        processes: ProcessTracker,
        clock: Clock | None = None,
    ):
        self.store = store
        self.registry = registry
        self.journal = journal
        self.clock = clock or clock_from_environment()
        self.book = Book()
        self.runner = Runner(power, registry, processes, self._record)
        self.runs: dict[tuple[str, str], Run] = {}  # (server, schedule id) -> its run at work
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        async for ev in iterate(self.store.engine, EventFilter(types=list(SCHEDULE_TYPES))):
            self.book.apply(ev)
        live = self.registry.views
        for server in {server for server, _ in self.book.entries} - set(live):
            self.book.forget_server(server)  # deleted: its history ends with server.deleted
        for run_id, (server, schedule_id) in list(self.book.open_runs.items()):
            if server not in live:
                continue
            finished = ScheduleRunFinished(
                schedule_id=schedule_id, run_id=run_id, outcome="abandoned", reason=ABANDONED
            )
            await self._record(server, finished, SCHEDULE_META.model_copy(update={"run_id": run_id}))
        for uuid in list(self.registry.views):
            await self._follow_definition(uuid)
        now = self.clock.now()
        for entry in list(self.book.entries.values()):
            await self._decide_missed(entry, now)
        self._unsubscribe = self.store.subscribe(self._on_commit)
        self._loop = asyncio.create_task(self._keep_time(), name="schedules")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        tasks = [t for t in (self._loop, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the ways in ---------------------------------------------------------------------------

    def schedules(self, server: str) -> list[dict[str, Any]]:
        self.registry.get(server)  # UnknownServer for a server it does not hold
        return [self._describe(e) for e in sorted(self.book.of_server(server), key=lambda e: str(e.schedule.id))]

    async def add(self, server: str, schedule: Schedule, meta: Metadata) -> dict[str, Any]:
        """Record a schedule set by the API (an id it holds already is replaced)."""
        self.registry.get(server)
        if schedule.id is None:
            schedule = schedule.model_copy(update={"id": new_id()})
        entry = await self._set(server, schedule, "api", meta)
        return self._describe(entry)

    async def remove(self, server: str, schedule_id: str, meta: Metadata) -> bool:
        self.registry.get(server)
        entry = self.book.entries.get((server, schedule_id))
        if entry is None:
            return False
        await self._record(server, ScheduleRemoved(schedule_id=schedule_id, source=entry.source), meta)
        self._wake.set()
        return True

    # -- keeping time --------------------------------------------------------------------------

    async def _keep_time(self) -> None:
        while True:
            now = self.clock.now()
            for entry in list(self.book.entries.values()):
                if entry.next_due is None:
                    entry.next_due = entry.schedule.next_after(now)
                elif entry.next_due <= now:
                    due, entry.next_due = entry.next_due, entry.schedule.next_after(now)
                    self._background(self._fire(entry, due), f"schedule-{entry.schedule.id}")
            soonest = min((e.next_due for e in self.book.entries.values() if e.next_due), default=None)
            self._wake.clear()
            await self.clock.wait(soonest or now.replace(year=now.year + 1), self._wake)

    async def _fire(self, entry: Entry, due: datetime, missed: bool = False) -> None:
        server, schedule = entry.server, entry.schedule
        sid = str(schedule.id)
        if server not in self.registry.views:  # deleted since it came due
            return
        meta = SCHEDULE_META.model_copy(update={"schedule_id": sid})
        skip: tuple[str, str | None] = ("", None)
        if (server, sid) in self.runs:
            skip = ("still_running", f"its run {self.runs[server, sid].run_id} has not finished")
        elif schedule.skip_next:
            skip = ("skip_next", "skip_next was set (it is cleared now)")
        elif problem := state_problem(schedule, self.registry.state(server)):
            skip = ("only_in_states", problem)
        elif problem := await operator_problem(self.store.engine, server, schedule, self.clock.now()):
            skip = ("not_within_minutes_of_operator", problem)
        if skip[1] is not None:
            skipped = ScheduleSkipped(schedule_id=sid, due=due.isoformat(), condition=skip[0], reason=skip[1])
            await self._record(server, skipped, meta)
            return
        run = Run(server, sid, new_id(), due.isoformat(), list(schedule.steps), missed=missed)
        self.runs[server, sid] = run
        run.task = asyncio.current_task()
        try:
            await self.runner.run(run)
        finally:
            self.runs.pop((server, sid), None)

    async def _decide_missed(self, entry: Entry, now: datetime) -> None:
        """At boot: the due times between the last one the schedule answered (or its setting) and now."""
        schedule = entry.schedule
        due = schedule.next_after(entry.last_due or entry.set_at)
        missed: list[datetime] = []
        while due <= now and len(missed) < MISSED_COUNTED:
            missed.append(due)
            due = schedule.next_after(due)
        entry.next_due = schedule.next_after(now) if missed else due
        if not missed:
            return
        reason = (
            "the policy is run_once: it runs once now, for the last of them"
            if schedule.missed == "run_once"
            else "the policy is skip: none of them runs"
        )
        decision = ScheduleMissed(
            schedule_id=str(schedule.id),
            count=len(missed),
            first_due=missed[0].isoformat(),
            last_due=missed[-1].isoformat(),
            policy=schedule.missed,
            reason=reason,
        )
        await self._record(entry.server, decision, SCHEDULE_META.model_copy(update={"schedule_id": schedule.id}))
        if schedule.missed == "run_once":
            self._background(self._fire(entry, missed[-1], missed=True), f"schedule-{schedule.id}-missed")

    # -- the log -------------------------------------------------------------------------------

    def _on_commit(self, events: list[RecordedEvent]) -> None:
        for ev in events:
            if ev.type == EventType.POWER_REQUESTED and ev.data.get("action") == "kill":
                m = ev.metadata
                if m.get("actor") != ACTOR and m.get("cause") in OPERATOR_CAUSES:
                    self._cancel_runs(ev.stream_id, f"an operator's kill (operation {ev.data.get('operation_id')})", ev)
            elif ev.type in (EventType.SERVER_REGISTERED, EventType.CONFIGURATION_CHANGED):
                self._background(self._follow_definition(ev.stream_id), f"schedules-definition-{ev.stream_id}")
            elif ev.type == EventType.SERVER_DELETED:
                # Its runs end with it, unrecorded: the server's history ends with server.deleted.
                for (server, _), run in list(self.runs.items()):
                    if server == ev.stream_id and run.task is not None:
                        run.task.cancel()
                self.book.forget_server(ev.stream_id)

    def _cancel_runs(self, server: str, reason: str, ev: RecordedEvent) -> None:
        for (s, _), run in list(self.runs.items()):
            if s == server and run.cancel_reason is None and run.task is not None:
                run.cancel_reason, run.cancelled_by = reason, ev.data.get("operation_id")
                run.task.cancel()

    async def _follow_definition(self, server: str) -> None:
        """Make the schedules from the server's definition those its `schedules:` lists."""
        try:
            view = self.registry.get(server)
        except UnknownServer:
            return
        held = self.book.of_server(server)
        if not held and view.config_source is not None and '"schedules"' not in view.config_source:
            return  # a snapshot's definition without the key (most servers): not parsed at boot for nothing
        definition = view.definition or {}
        try:
            wanted = {str(s.id): s for s in parse_schedules(definition.get("schedules") or [])}
        except InvalidSchedule as exc:  # refused at the door; a log from before the check may hold one
            log.warning(
                "a server's definition holds a schedule that is not valid; ignored", server=server, problem=str(exc)
            )
            return
        meta = SCHEDULE_META.model_copy(update={"channel": "definition"})
        for entry in held:
            if entry.source == "definition" and str(entry.schedule.id) not in wanted:
                await self._record(
                    server, ScheduleRemoved(schedule_id=str(entry.schedule.id), source="definition"), meta
                )
        for sid, schedule in wanted.items():
            now_held = self.book.entries.get((server, sid))
            if now_held is None or now_held.schedule.stored() != schedule.stored():
                await self._set(server, schedule, "definition", meta)
        self._wake.set()

    async def _set(self, server: str, schedule: Schedule, source: Source, meta: Metadata) -> Entry:
        sid = str(schedule.id)
        added = ScheduleAdded.model_validate({"schedule_id": sid, "schedule": schedule.stored(), "source": source})
        await self._record(server, added, meta.model_copy(update={"schedule_id": sid}))
        entry = self.book.entries[server, sid]
        entry.next_due = schedule.next_after(self.clock.now())
        self._wake.set()
        return entry

    async def _record(self, server: str, record: Event, meta: Metadata) -> list[RecordedEvent]:
        recorded = await self.journal.record(server, record, meta=meta)
        for ev in recorded:
            self.book.apply(ev)
        return recorded

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a schedule's work failed", task=task.get_name(), error=repr(task.exception()))

    def _describe(self, entry: Entry) -> dict[str, Any]:
        return {
            **entry.schedule.stored(),
            "source": entry.source,
            "set_at": entry.set_at.isoformat(),
            "last_due": entry.last_due.isoformat() if entry.last_due else None,
            "next_due": entry.next_due.isoformat() if entry.next_due and entry.next_due != NEVER else None,
            "running": (entry.server, str(entry.schedule.id)) in self.runs,
        }
