"""The event that records the statechart in force (on the node's own stream). Registered with
engine.events' `event_class`, which imports this module."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from wingman.engine.event_types import EventType
from wingman.engine.events import Event, event

# Who decided that this chart is in force from here on:
# - first_start: no chart was recorded for the node and it had no recorded state change;
# - history_accepted: the node's history leaves every live server in a state of the chart (the
#   report's findings, if any, are about past transitions only);
# - operator_accepted: it did not, and the operator started the daemon with --accept-chart-change.
Decision = Literal["first_start", "history_accepted", "operator_accepted"]


@event(EventType.STATECHART_ADOPTED)
class StatechartAdopted(Event):
    """The statechart in force on this node from this event on, as its text (YAML)."""

    chart_hash: str  # engine.statechart.chart_digest of the text
    chart: str  # the file's text, exactly
    source: str  # the file it was read from
    previous_hash: str | None = None  # the chart recorded before (None: none was)
    decision: Decision
    counts: dict[str, int] = Field(default_factory=dict)  # the what-if report's counts per kind
    events_checked: int = 0  # the recorded transitions the report replayed
    servers_replaced: int = 0  # servers moved into the new chart (a state.changed each, just after)
