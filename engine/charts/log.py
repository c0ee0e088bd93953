"""The log's timeline of statecharts: which chart was in force at each position.

Each `node.statechart_adopted` event holds a chart's whole text; the chart it names is in force for
the events recorded after it. History from before a node's first recorded chart was recorded
under the packaged chart (the daemon could run no other before `system.statechart`). The result is
the chart in force at the end of the log, carrying the earlier ones (Statechart.since, earlier):
the fold checks a transition against `in_force_at(position)`, so history recorded under an older
chart stays foldable after a change.

A daemon reads its own node's timeline. The offline tools, which do not know whose servers they
read, read every node's: right for a node's own database and for a fleet whose nodes run the same
chart (a repeat of the same chart is no change); a fleet whose nodes run different charts needs a
timeline per node, which is not built yet (docs/statechart.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String, select, type_coerce
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.event_types import EventType
from wingman.engine.panel_events import node_stream
from wingman.engine.statechart import Statechart, StatechartError, load_statechart, parse_statechart
from wingman.engine.store.hashing import json_loads
from wingman.engine.store.schema import events as E

EVERY_NODE = "*"  # `node`: read every node's adoptions (the offline tools)


@dataclass(frozen=True)
class Adoption:
    """One recorded `node.statechart_adopted`."""

    position: int
    stream_id: str
    chart_hash: str
    text: str
    decision: str


async def adoptions(engine: AsyncEngine, node: str | None = EVERY_NODE) -> list[Adoption]:
    """The charts recorded on `node`'s stream (None: a node without an id; EVERY_NODE: all), in log order."""
    query = (
        select(E.c.position, E.c.stream_id, type_coerce(E.c.data, String).label("data"))
        .where(E.c.type == EventType.STATECHART_ADOPTED)
        .order_by(E.c.position)
    )
    if node != EVERY_NODE:
        query = query.where(E.c.stream_id == node_stream(node))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    found = []
    for r in rows:
        try:
            d = json_loads(r.data) if isinstance(r.data, str) else r.data
            found.append(Adoption(r.position, r.stream_id, str(d["chart_hash"]), str(d["chart"]), str(d["decision"])))
        except (ValueError, KeyError, TypeError):  # not what was written: verification names it
            continue
    return found


_parsed: dict[str, Statechart] = {}  # by hash: a recorded chart is parsed once per process


def recorded_chart(adoption: Adoption) -> Statechart:
    """The chart an adoption recorded, parsed from its text (StatechartError when it does not parse)."""
    chart = _parsed.get(adoption.chart_hash)
    if chart is None:
        try:
            chart = parse_statechart(adoption.text)
        except (StatechartError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StatechartError(
                f"the statechart recorded at position {adoption.position} does not parse: {exc}"
            ) from None
        _parsed[adoption.chart_hash] = chart
    return chart


def timeline(found: list[Adoption], current: Statechart | None = None) -> Statechart:
    """The chart in force after the last of `found`, carrying the ones before it by position.
    `current`: the daemon's own chart object, used for the last adoption when it is that chart."""
    steps: list[tuple[int, Statechart]] = [(0, load_statechart())]
    for a in found:
        if steps[-1][1].digest == a.chart_hash:
            continue  # the same chart again (another node's record of it, in a fleet): no change
        try:
            chart = recorded_chart(a)
        except StatechartError:
            # Its text does not parse (changed in the log: verification names the event): the
            # chart before it stays in force, and what was recorded under it is judged by that.
            continue
        if chart.digest != a.chart_hash:
            continue  # the text is not the chart its hash names: the same
        steps.append((a.position, chart))
    since, last = steps[-1]
    if current is not None and current.digest == last.digest:
        last = current
    return last.with_history(since, tuple(steps[:-1]))


async def chart_in_force(
    engine: AsyncEngine, node: str | None = EVERY_NODE, current: Statechart | None = None
) -> Statechart:
    """The chart in force at the end of the log (with its timeline); the packaged chart when the
    log records none, or has no events table yet."""
    try:
        found = await adoptions(engine, node)
    except DBAPIError:  # no events table yet (a database before its migrations): no chart recorded
        found = []
    return timeline(found, current)
