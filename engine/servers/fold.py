"""A server's state and configuration, folded from its events.

`ServerView` is what one stream's history says about a server at its last event: the same fold
serves the live registry and the audit's point-in-time replay, so the two cannot disagree. The
power state has one holder, `view.power`, an engine.statechart.ChartPosition, live or replayed.
A `state.changed` event that is not legal from the folded state is an error in the log, never
silently applied. Legal means: under the chart in force when it was recorded (the chart given
carries the log's timeline, engine.charts.log; events from its `since` on are judged by it, older
ones by the chart before), or a re-placement out of a state that chart lacks, after an accepted
change (trigger `statechart_change`, engine.charts.adoption).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from wingman.engine.event_types import Cause, EventType
from wingman.engine.events import RecordedEvent
from wingman.engine.servers.definition import ServerConfig, parse_definition
from wingman.engine.servers.operations import OPEN_STATUSES, OUTCOME_TYPES, LoggedEvent, Operation, track_operation
from wingman.engine.statechart import (
    CHART_CHANGE_TRIGGER,
    ChartPosition,
    IllegalTransition,
    Statechart,
    Trigger,
    load_statechart,
)
from wingman.engine.store.hashing import json_loads
from wingman.engine.store.lenient_rows import EventRow


class PowerState(Protocol):
    """What holds a server's position in the chart (engine.statechart.ChartPosition)."""

    state: str

    def destination(self, trigger: str) -> str: ...

    def may(self, trigger: str) -> bool: ...

    def fire(self, trigger: str) -> str: ...


@dataclass(slots=True)  # thousands per node: no __dict__ each
class ServerView:
    uuid: str
    power: PowerState
    version: int = 0
    position: int = 0
    # The definition, parsed (`config`), or as a snapshot stored it (its JSON text), parsed on
    # first use: a node booting 10,000 servers from their snapshots neither parses them all
    # before it answers nor holds 10,000 parsed definitions for servers nothing asks about.
    config_source: str | None = None
    _config: ServerConfig | None = field(default=None, repr=False)
    suspended: bool = False
    deleted: bool = False
    operation_in_flight: str | None = None
    last_transition: dict[str, Any] | None = None
    last_process: dict[str, Any] | None = None  # the last process.started data, for boot recovery
    last_exit: dict[str, Any] | None = None  # the last process.exited data, and its `version`
    updated_at: datetime | None = None
    operations: dict[str, Operation] = field(default_factory=dict)  # open ones (live: see the registry)
    running_since: datetime | None = None  # when it last became running (None while it is not)
    last_uptime: float = 0.0  # seconds it was running before it last went offline
    crash_streak: list[datetime] = field(default_factory=list)  # crashes since it last ran long enough
    pending_restart: dict[str, Any] | None = None  # the crash handler's restart not requested yet

    @property
    def state(self) -> str:
        return self.power.state

    @property
    def config(self) -> ServerConfig | None:
        if self._config is None and self.config_source is not None:
            self._config, self.config_source = parse_definition(json_loads(self.config_source)), None
        return self._config

    @config.setter
    def config(self, value: ServerConfig | None) -> None:
        self._config, self.config_source = value, None

    @property
    def definition(self) -> dict[str, Any] | None:
        """The definition as recorded (without parsing it when it is not parsed yet)."""
        if self._config is None:
            return None if self.config_source is None else json_loads(self.config_source)
        return self._config.definition

    def frozen(self, chart: Statechart) -> ServerView:
        """A copy that later folding does not change (its own position in the chart)."""
        return replace(
            self,
            power=ChartPosition(chart, self.state),
            operations=dict(self.operations),
            crash_streak=list(self.crash_streak),
        )

    def prune(self) -> ServerView:
        """Drop finished operations (their outcome is in the log; a replay needs only open ones)."""
        if any(op.status not in OPEN_STATUSES for op in self.operations.values()):
            self.operations = {k: op for k, op in self.operations.items() if op.status in OPEN_STATUSES}
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "state": self.state,
            "version": self.version,
            "position": self.position,
            "is_suspended": self.suspended,
            "deleted": self.deleted,
            "operation_in_flight": self.operation_in_flight,
            "last_transition": self.last_transition,
            "configuration": self.definition,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "pending_restart": self.pending_restart,
        }


class LogError(Exception):
    """The log says something that cannot be folded (an illegal transition, a bad sequence).
    It names the event as a RecordedEvent, whichever form it was read in."""

    def __init__(self, event: LoggedEvent, problem: str):
        super().__init__(f"event {event.stream_id} v{event.version} (position {event.position}): {problem}")
        self.event = event.recorded() if isinstance(event, EventRow) else event
        self.problem = problem


CRASH_MEMORY = 100  # crashes of a streak kept (a restart policy allows at most 1000 in its window)


def new_view(uuid: str, chart: Statechart | None = None, power: PowerState | None = None) -> ServerView:
    """A server before its first event; its position is a chart position unless `power` is given."""
    return ServerView(uuid=uuid, power=power or ChartPosition(chart or load_statechart()))


def apply(view: ServerView, ev: LoggedEvent, chart: Statechart | None = None) -> ServerView:
    """Fold one event into the view (in place) and return it."""
    chart = chart or load_statechart()
    if ev.version != view.version + 1:
        raise LogError(ev, f"expected version {view.version + 1}, found {ev.version}")
    d, t = ev.data, ev.type
    if t in (EventType.SERVER_REGISTERED, EventType.CONFIGURATION_CHANGED):
        view.config = parse_definition(d["definition"])
        view.suspended = view.config.suspended
        view.deleted = False
    elif t == EventType.SERVER_SUSPENDED:
        view.suspended = True
    elif t == EventType.SERVER_UNSUSPENDED:
        view.suspended = False
    elif t == EventType.SERVER_DELETED:
        view.deleted = True
    elif t == EventType.STATE_CHANGED:
        _change_state(view, ev, chart)
    elif t == EventType.PROCESS_STARTED:
        view.last_process = dict(d)
    elif t == EventType.PROCESS_EXITED:
        view.last_exit = {**d, "version": ev.version}  # the version tells changed_at it is the change's own
    elif t == EventType.POWER_STARTED:
        view.operation_in_flight = d["operation_id"]
        track_operation(view.operations, view.uuid, ev)
    elif t in OUTCOME_TYPES:
        if view.operation_in_flight == d["operation_id"]:
            view.operation_in_flight = None
        track_operation(view.operations, view.uuid, ev)
    elif t == EventType.POWER_REQUESTED:
        track_operation(view.operations, view.uuid, ev)
        view.pending_restart = None  # whoever asks for an action now, an automatic restart is moot
    elif t == EventType.SERVER_CRASHED:
        at = crashed_at(view, ev)
        view.crash_streak = [at] if d.get("streak_reset") else [*view.crash_streak, at][-CRASH_MEMORY:]
    elif t == EventType.CRASH_DECIDED:
        view.pending_restart = None
        if d["restart"]:
            due = ev.recorded_at + timedelta(seconds=d.get("delay_seconds") or 0)
            view.pending_restart = {"due_at": due.isoformat(), "crash_event_id": d.get("crash_event_id")}
    view.version = ev.version
    view.position = ev.position
    view.updated_at = ev.recorded_at
    return view


def _change_state(view: ServerView, ev: LoggedEvent, chart: Statechart) -> None:
    d = ev.data
    if d["from_state"] != view.state:
        raise LogError(ev, f"state change from {d['from_state']!r} but the server was {view.state!r}")
    try:
        if ev.position >= chart.since:  # the chart in force: the one answer (engine.statechart)
            dest = view.power.destination(d["trigger"])
        else:  # recorded under an earlier chart (the log's timeline): judged by that one
            dest = chart.in_force_at(ev.position).destination(d["trigger"], view.state)
    except IllegalTransition as exc:
        dest = _replaced(view, ev, chart.in_force_at(ev.position), exc)
    if dest != d["to_state"]:
        raise LogError(ev, f"trigger {d['trigger']!r} leads to {dest!r}, not {d['to_state']!r}")
    view.power.state = dest  # the position moves where that answer said, without asking again
    if d["trigger"] == Trigger.READY:
        view.running_since = ev.recorded_at
    elif dest == chart.initial:
        since, view.running_since = view.running_since, None
        view.last_uptime = max(0.0, (changed_at(view, ev) - since).total_seconds()) if since else 0.0
    view.last_transition = {
        "from": d["from_state"],
        "to": dest,
        "trigger": d["trigger"],
        "cause": d["cause"],
        "operation_id": d.get("operation_id"),
        "actor": ev.metadata.get("actor"),
        "at": ev.recorded_at.isoformat(),
        "version": ev.version,
    }


def _replaced(view: ServerView, ev: LoggedEvent, chart: Statechart, refused: IllegalTransition) -> str:
    """The destination of a server re-placed into the chart in force after an accepted change
    (engine.charts): legal only out of a state that chart lacks, into one it has. Any other
    transition the chart refused is an error in the log."""
    d = ev.data
    if (
        d["trigger"] != CHART_CHANGE_TRIGGER
        or d["cause"] != Cause.STATECHART_CHANGE
        or view.state in chart.states
        or d["to_state"] not in chart.states
    ):
        raise LogError(ev, str(refused))
    return str(d["to_state"])


def changed_at(view: ServerView, ev: LoggedEvent) -> datetime:
    """When the change `ev` really happened. For a change by the process's exit, that is when the
    daemon saw the exit (the `observed_at` of the `process.exited` committed just before it, in
    the same commit): the commit itself can come seconds later, when the store could not write.
    Otherwise (any other change, an exit without a seen moment) the commit's time."""
    seen = view.last_exit
    if (
        ev.data.get("trigger") != Trigger.EXITED
        or not seen
        or seen.get("version") != ev.version - 1
        or not seen.get("observed_at")
    ):
        return ev.recorded_at
    return min(datetime.fromisoformat(seen["observed_at"]), ev.recorded_at)  # never after its commit


def crashed_at(view: ServerView, ev: LoggedEvent) -> datetime:
    """When the crash `ev` happened: when its exit was seen. A crash is recorded after its exit
    (the last one folded), and both can wait long for the store; the commit's time when the exit
    has no seen moment (found gone at boot, or an older log)."""
    seen = (view.last_exit or {}).get("observed_at")
    return min(datetime.fromisoformat(seen), ev.recorded_at) if seen else ev.recorded_at


def fold(uuid: str, events: list[RecordedEvent], chart: Statechart | None = None) -> ServerView:
    view = new_view(uuid, chart)
    for ev in events:
        apply(view, ev, chart)
    return view
