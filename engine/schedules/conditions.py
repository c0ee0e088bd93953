"""Whether a schedule that came due may run now: each condition answers None (it holds) or the
reason it does not, recorded with the skip."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.event_types import Cause, EventType
from wingman.engine.schedules.model import Schedule
from wingman.engine.store.queries import EventFilter, page

ACTOR = "system:schedule"
OPERATOR_CAUSES = frozenset({Cause.OPERATOR, Cause.PANEL})
LOOK_BACK = 1000  # requests in the window read at most: a server asked that often is not quiet anyway


def state_problem(schedule: Schedule, state: str) -> str | None:
    wanted = schedule.conditions.only_in_states
    if wanted and state not in wanted:
        return f"the server is {state}, and the schedule runs only when it is {' or '.join(wanted)}"
    return None


async def operator_problem(db: AsyncEngine, server: str, schedule: Schedule, now: datetime) -> str | None:
    """The last power request an operator (or the Panel) made of the server within the window."""
    minutes = schedule.conditions.not_within_minutes_of_operator
    if not minutes:
        return None
    since = now - timedelta(minutes=minutes)
    flt = EventFilter(stream_id=server, types=[EventType.POWER_REQUESTED], since=since)
    events, _ = await page(db, flt, limit=LOOK_BACK)
    operators = [e for e in events if e.metadata.get("cause") in OPERATOR_CAUSES and e.metadata.get("actor") != ACTOR]
    if not operators:
        return None
    last = operators[-1]
    return (
        f"an operator asked for {last.data.get('action')} at {last.recorded_at.isoformat()} "
        f"(operation {last.data.get('operation_id')}), within {minutes:g} minutes"
    )
