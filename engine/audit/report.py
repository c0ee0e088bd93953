"""What a verification found (engine.audit.verify): each problem, with where it is, and the report
of a whole pass, as text and as the JSON the CLI and the HTTP API give."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Finding:
    stream_id: str
    version: int | None
    position: int | None
    check: str  # format | hash | sequence | chain | transition | operation | live
    message: str
    event_id: str | None = None
    type: str | None = None
    # The node that wrote the event (its stream's owner for a finding without an event); None when
    # it was written before node ids were recorded (engine.audit.nodes).
    node: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "stream": self.stream_id,
            "version": self.version,
            "position": self.position,
            "event_id": self.event_id,
            "type": self.type,
            "check": self.check,
            "problem": self.message,
        }

    def __str__(self) -> str:
        at = f"v{self.version} at position {self.position}" if self.version is not None else "live state"
        by = f"node {self.node}, " if self.node is not None else ""
        return f"{by}server {self.stream_id}, {at} ({self.type or '-'}): [{self.check}] {self.message}"


@dataclass
class Report:
    scope: str | None
    high_water: int
    events_checked: int = 0
    streams_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    findings_total: int = 0
    warnings: list[str] = field(default_factory=list)
    live_checked: bool = False
    open_operations: int = 0  # requested, no outcome yet, and not known to be dropped
    node: str | None = None  # the pass checked this node's streams only (engine.audit.fleet)

    @property
    def ok(self) -> bool:
        return self.findings_total == 0

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "server": self.scope,
            "node": self.node,
            "checked_up_to_position": self.high_water,
            "events_checked": self.events_checked,
            "streams_checked": self.streams_checked,
            "first_problem": self.first.as_dict() if self.first else None,
            "problems": [f.as_dict() for f in self.findings],
            "problems_total": self.findings_total,
            "warnings": self.warnings,
            "live_state_checked": self.live_checked,
            "open_operations": self.open_operations,
        }
