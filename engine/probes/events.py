"""What the log records of probes: the first readiness success, each change of a liveness probe
between passing and failing, and the decision that a server is hung. Never one event per
success: a history of a thousand probed servers stays the history of what changed.

engine.events imports this module at its end, so `event_class` knows these types wherever events
are read back.
"""

from __future__ import annotations

from wingman.engine.event_types import EventType
from wingman.engine.events import Event, event


@event(EventType.PROBE_READY)
class ProbeReady(Event):
    """The readiness probe's first success after a launch: the server is `running` from here."""

    kind: str  # tcp | http | a2s | minecraft
    address: str  # udp/27015
    detail: str  # what the server answered
    operation_id: str | None = None


@event(EventType.PROBE_CHANGED)
class ProbeChanged(Event):
    """A liveness probe went from passing to failing, or back."""

    kind: str
    address: str
    passing: bool
    detail: str
    failures: int  # in a row, this one included (0 when passing)
    failure_threshold: int


@event(EventType.PROBE_HUNG)
class ProbeHung(Event):
    """`failure_threshold` liveness failures in a row: the server is declared hung, killed, and its
    exit recorded as a crash with cause `unresponsive` (the crash policy decides the restart)."""

    kind: str
    address: str
    detail: str  # the last failure
    failures: int
    interval_seconds: float
