"""One structured log line when a power operation is accepted, and one when it settles, so an
operator watching the daemon's log sees the node work (the event log has the whole story).

A store subscriber: it hears every committed group inside the store's writer, before the
appenders resume. So it only picks the lines out of the group (a few dict reads per event) and
hands the writing to the event loop (`call_soon`): the writer never waits on the log's output,
and a failure here is logged and dropped, never raised into the writer.

The settling line names the actor who asked, read from the operation's power.requested (an
outcome recorded by the daemon itself, such as an interruption found at boot, is the daemon's).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import structlog

from wingman.engine.event_types import EventType
from wingman.engine.events import RecordedEvent

log = structlog.get_logger("wingman.operations")

OUTCOMES: dict[str, str] = {
    EventType.POWER_SUCCEEDED: "succeeded",
    EventType.POWER_FAILED: "failed",
    EventType.POWER_REJECTED: "rejected",
    EventType.POWER_CANCELLED: "cancelled",
    EventType.POWER_INTERRUPTED: "interrupted",
}
REMEMBERED = 4096  # operations whose asker is kept for their outcome line (in flight: a handful)

Line = tuple[str, dict[str, Any]]


class OperationLog:
    """Subscribe an instance to the event store (`store.subscribe(OperationLog())`)."""

    def __init__(self, logger: Any = None) -> None:
        self._log = logger or log
        # operation id -> (actor, channel, when it was accepted), dropped at its outcome
        self._asked: OrderedDict[str, tuple[Any, Any, Any]] = OrderedDict()

    def __call__(self, events: list[RecordedEvent]) -> None:
        try:
            lines = [line for ev in events if (line := self._line(ev)) is not None]
        except Exception:  # noqa: BLE001 - isolated: the writer goes on (see the module doc)
            self._log.exception("the operation log could not read a committed group")
            return
        if not lines:
            return
        try:
            asyncio.get_running_loop().call_soon(self._write, lines)
        except RuntimeError:  # no loop (a synchronous caller): write now
            self._write(lines)

    def _line(self, ev: RecordedEvent) -> Line | None:
        if ev.type == EventType.POWER_REQUESTED:
            op = ev.data["operation_id"]
            actor, channel = ev.metadata.get("actor"), ev.metadata.get("channel")
            self._asked[op] = (actor, channel, ev.recorded_at)
            while len(self._asked) > REMEMBERED:
                self._asked.popitem(last=False)
            return "power operation accepted", {
                "operation_id": op,
                "server": ev.stream_id,
                "action": ev.data.get("action"),
                "actor": actor,
                "channel": channel,
                "position": ev.position,
            }
        outcome = OUTCOMES.get(ev.type)
        if outcome is None:
            return None
        op = ev.data["operation_id"]
        actor, channel, asked_at = self._asked.pop(op, (ev.metadata.get("actor"), ev.metadata.get("channel"), None))
        fields: dict[str, Any] = {
            "operation_id": op,
            "server": ev.stream_id,
            "action": ev.data.get("action"),
            "actor": actor,
            "channel": channel,
            "outcome": outcome,
            "reason": ev.data.get("reason") or ev.data.get("detail"),
            "position": ev.position,
        }
        if asked_at is not None:
            fields["seconds"] = round((ev.recorded_at - asked_at).total_seconds(), 3)
        return "power operation settled", fields

    def _write(self, lines: list[Line]) -> None:
        for message, fields in lines:
            try:
                self._log.info(message, **fields)
            except Exception:  # noqa: BLE001 - a log that cannot be written must not stop the loop's callbacks
                pass
