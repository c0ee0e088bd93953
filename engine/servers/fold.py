"""A server's state and configuration, folded from its events.

`ServerView` is what one stream's history says about a server at its last event: the same fold
serves the live registry and the audit's point-in-time replay, so the two cannot disagree. The
power state is tracked by the statechart (engine.statechart): a `state.changed` event that is not
legal from the folded state is an error in the log, never silently applied.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from engine.events import RecordedEvent
from engine.servers.definition import ServerConfig, parse_definition
from engine.statechart import IllegalTransition, Statechart, load_statechart

OUTCOME_TYPES = {
    "power.succeeded": "succeeded",
    "power.failed": "failed",
    "power.rejected": "rejected",
    "power.cancelled": "cancelled",
    "power.interrupted": "interrupted",
}


@dataclass
class Operation:
    id: str
    server: str
    action: str
    wait_seconds: int
    status: str = "queued"  # queued | running | succeeded | failed | rejected | cancelled | interrupted
    reason: str | None = None
    requested_at: datetime | None = None
    finished_at: datetime | None = None
    actor: str | None = None
    channel: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "server": self.server, "action": self.action, "status": self.status,
            "reason": self.reason, "wait_seconds": self.wait_seconds, "actor": self.actor,
            "channel": self.channel,
            "requested_at": self.requested_at.isoformat() if self.requested_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass
class ServerView:
    uuid: str
    state: str
    version: int = 0
    position: int = 0
    config: ServerConfig | None = None
    suspended: bool = False
    deleted: bool = False
    operation_in_flight: str | None = None
    last_transition: dict[str, Any] | None = None
    last_process: dict[str, Any] | None = None  # the last process.started data, for boot recovery
    last_exit: dict[str, Any] | None = None
    updated_at: datetime | None = None
    operations: dict[str, Operation] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid, "state": self.state, "version": self.version, "position": self.position,
            "is_suspended": self.suspended, "deleted": self.deleted,
            "operation_in_flight": self.operation_in_flight, "last_transition": self.last_transition,
            "configuration": self.config.definition if self.config else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


class LogError(Exception):
    """The log says something that cannot be folded (an illegal transition, a bad sequence)."""

    def __init__(self, event: RecordedEvent, problem: str):
        super().__init__(f"event {event.stream_id} v{event.version} (position {event.position}): {problem}")
        self.event = event
        self.problem = problem


def new_view(uuid: str, chart: Statechart | None = None) -> ServerView:
    return ServerView(uuid=uuid, state=(chart or load_statechart()).initial)


def apply(view: ServerView, ev: RecordedEvent, chart: Statechart | None = None, keep_operations: bool = True) -> ServerView:
    """Fold one event into the view (in place) and return it."""
    chart = chart or load_statechart()
    if ev.version != view.version + 1:
        raise LogError(ev, f"expected version {view.version + 1}, found {ev.version}")
    d, t = ev.data, ev.type
    if t in ("server.registered", "server.configuration_changed"):
        view.config = parse_definition(d["definition"])
        view.suspended = view.config.suspended
        view.deleted = False
    elif t == "server.suspended":
        view.suspended = True
    elif t == "server.unsuspended":
        view.suspended = False
    elif t == "server.deleted":
        view.deleted = True
    elif t == "state.changed":
        if d["from_state"] != view.state:
            raise LogError(ev, f"state change from {d['from_state']!r} but the server was {view.state!r}")
        try:
            dest = chart.destination(d["trigger"], view.state)
        except IllegalTransition as exc:
            raise LogError(ev, str(exc)) from None
        if dest != d["to_state"]:
            raise LogError(ev, f"trigger {d['trigger']!r} leads to {dest!r}, not {d['to_state']!r}")
        view.state = dest
        view.last_transition = {
            "from": d["from_state"], "to": dest, "trigger": d["trigger"], "cause": d["cause"],
            "operation_id": d.get("operation_id"), "actor": ev.metadata.get("actor"),
            "at": ev.recorded_at.isoformat(), "version": ev.version,
        }
    elif t == "process.started":
        view.last_process = dict(d)
    elif t == "process.exited":
        view.last_exit = dict(d)
    elif t == "power.started":
        view.operation_in_flight = d["operation_id"]
        if keep_operations:
            track_operation(view.operations, view.uuid, ev)
    elif t in OUTCOME_TYPES:
        if view.operation_in_flight == d["operation_id"]:
            view.operation_in_flight = None
        if keep_operations:
            track_operation(view.operations, view.uuid, ev)
    elif t == "power.requested" and keep_operations:
        track_operation(view.operations, view.uuid, ev)
    view.version = ev.version
    view.position = ev.position
    view.updated_at = ev.recorded_at
    return view


def track_operation(operations: dict[str, Operation], server: str, ev: RecordedEvent) -> None:
    """Fold one power.* event into the operations it concerns."""
    d = ev.data
    if ev.type == "power.requested":
        operations[d["operation_id"]] = Operation(
            id=d["operation_id"], server=server, action=d["action"], wait_seconds=d["wait_seconds"],
            requested_at=ev.recorded_at, actor=ev.metadata.get("actor"), channel=ev.metadata.get("channel"),
        )
        return
    op = operations.get(d.get("operation_id"))
    if op is None:
        return
    if ev.type == "power.started":
        op.status = "running"
    elif ev.type in OUTCOME_TYPES:
        op.status = OUTCOME_TYPES[ev.type]
        op.reason = d.get("reason") or d.get("detail")
        op.finished_at = ev.recorded_at


def operation_from_events(events: list[RecordedEvent]) -> Operation | None:
    """An operation rebuilt from its own events (those carrying its id), or None."""
    operations: dict[str, Operation] = {}
    for ev in events:
        if ev.type.startswith("power."):
            track_operation(operations, ev.stream_id, ev)
    return next(iter(operations.values()), None)


def fold(uuid: str, events: list[RecordedEvent], chart: Statechart | None = None) -> ServerView:
    view = new_view(uuid, chart)
    for ev in events:
        apply(view, ev, chart)
    return view


def snapshot(view: ServerView) -> ServerView:
    """A copy that later folding will not change (for caches of past states)."""
    return replace(view, operations=dict(view.operations))
