"""The schedules' events, on the server's stream: its schedules' history (added, removed) and each
time one came due (fired, skipped, missed at boot) and how its run ended. The operations a run
asks for are ordinary power operations with their own outcomes; these say why they were asked for.

engine.events imports this module at its end, so `event_class` knows these types wherever events
are read back."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from wingman.engine.event_types import EventType
from wingman.engine.events import Event, event

RunOutcome = Literal["succeeded", "failed", "cancelled", "abandoned"]
Source = Literal["definition", "api"]  # where a schedule was set


@event(EventType.SCHEDULE_ADDED)
class ScheduleAdded(Event):
    """The schedule as it now stands (an id met again replaces the one before)."""

    schedule_id: str
    schedule: dict[str, Any]
    source: Source


@event(EventType.SCHEDULE_REMOVED)
class ScheduleRemoved(Event):
    schedule_id: str
    source: Source


@event(EventType.SCHEDULE_FIRED)
class ScheduleFired(Event):
    """A run begins; `due`: the time the expression named (ISO 8601, in the schedule's zone)."""

    schedule_id: str
    run_id: str
    due: str
    steps: int = Field(ge=1)
    missed: bool = False  # run once at boot for runs missed while the daemon was down


@event(EventType.SCHEDULE_SKIPPED)
class ScheduleSkipped(Event):
    """A due time that ran nothing. `condition`: which one stopped it (`only_in_states`,
    `not_within_minutes_of_operator`, `skip_next`, `still_running`); `reason` in words."""

    schedule_id: str
    due: str
    condition: str
    reason: str


@event(EventType.SCHEDULE_MISSED)
class ScheduleMissed(Event):
    """At boot: `count` due times passed while the daemon was down (the last one `last_due`);
    the schedule's policy (`skip` or `run_once`) decided."""

    schedule_id: str
    count: int = Field(ge=1)
    first_due: str
    last_due: str
    policy: Literal["skip", "run_once"]
    reason: str


@event(EventType.SCHEDULE_RUN_FINISHED)
class ScheduleRunFinished(Event):
    """How a run ended: every step succeeded, a step failed (the rest not run), an operator's
    kill cancelled it, or the daemon stopped during it (found at the next boot: abandoned)."""

    schedule_id: str
    run_id: str
    outcome: RunOutcome
    steps_done: int | None = Field(default=None, ge=0)  # None: abandoned, not known without reading its operations
    reason: str | None = None
    operation_id: str | None = None  # the operation of the step that failed or was cancelled
