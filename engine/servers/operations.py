"""Power operations as the log tells them: one `Operation` per `power.requested`, moved on by
its `power.started` and closed by its one outcome. The statuses are spelled here and only here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from wingman.engine.event_types import EventType
from wingman.engine.events import RecordedEvent
from wingman.engine.store.lenient_rows import EventRow

# An event as the log hands it to a fold: the model, or the light row a replay reads instead
# (engine.store.lenient_rows; the same fields).
LoggedEvent: TypeAlias = RecordedEvent | EventRow

# The outcome event types and the status each one gives its operation.
OUTCOME_TYPES: dict[str, str] = {
    EventType.POWER_SUCCEEDED: "succeeded",
    EventType.POWER_FAILED: "failed",
    EventType.POWER_REJECTED: "rejected",
    EventType.POWER_CANCELLED: "cancelled",
    EventType.POWER_INTERRUPTED: "interrupted",
}
QUEUED, RUNNING = "queued", "running"
OPEN_STATUSES = frozenset({QUEUED, RUNNING})  # no outcome yet
FINISHED_STATUSES = frozenset(OUTCOME_TYPES.values())


@dataclass(slots=True)  # the registry keeps 10,000 recently finished: no __dict__ each
class Operation:
    id: str
    server: str
    action: str
    wait_seconds: int
    status: str = QUEUED
    reason: str | None = None
    requested_at: datetime | None = None
    finished_at: datetime | None = None
    actor: str | None = None
    channel: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "server": self.server,
            "action": self.action,
            "status": self.status,
            "reason": self.reason,
            "wait_seconds": self.wait_seconds,
            "actor": self.actor,
            "channel": self.channel,
            "requested_at": self.requested_at.isoformat() if self.requested_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def track_operation(operations: dict[str, Operation], server: str, ev: LoggedEvent) -> None:
    """Fold one power.* event into the operations it concerns."""
    d = ev.data
    if ev.type == EventType.POWER_REQUESTED:
        operations[d["operation_id"]] = Operation(
            id=d["operation_id"],
            server=server,
            action=d["action"],
            wait_seconds=d["wait_seconds"],
            requested_at=ev.recorded_at,
            actor=ev.metadata.get("actor"),
            channel=ev.metadata.get("channel"),
        )
        return
    operation_id = d.get("operation_id")
    op = operations.get(operation_id) if operation_id is not None else None
    if op is None:
        return
    if ev.type == EventType.POWER_STARTED:
        op.status = RUNNING
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
