"""At boot, before the registry folds the servers: is the configured chart the one the log last
recorded for this node, and if not, may the daemon start with it (docs/statechart.md)?

- The same chart (same hash of its parsed content): nothing is written.
- Another one (or none recorded yet): this node's history is replayed against it
  (engine.audit.what_if). When every live server's recorded state is a state of the new chart, the
  change is recorded and the daemon starts (the report goes to the log as a warning when it has
  findings: past transitions the new chart would refuse). When it would leave a live server in a
  state it lacks, the start is refused (`ChartRefused`, the report in its message), nothing
  written, unless the operator accepts it (`wingman serve --accept-chart-change`).
- An accepted change is recorded on the node's stream, then each server in a state the new chart
  lacks is re-placed into it by a `state.changed` on its own stream (trigger `statechart_change`,
  cause `statechart_change`): to the state the new chart's replay of its history puts it in; when
  that is the initial state but something may still run (the old chart let the engine end it with
  `exited` or `installed`), to a state of the new chart that lets the engine end it the same way,
  so that boot recovery adopts or reaps what runs, never leaves it orphaned.

The appends are queued together, the chart first: the store commits them in order (one group
when it can), so every re-placement is recorded under the chart that explains it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.audit.what_if import WhatIf, render, replay_against
from wingman.engine.charts.events import Decision, StatechartAdopted
from wingman.engine.charts.log import Adoption, adoptions, timeline
from wingman.engine.event_types import Cause, EventType
from wingman.engine.events import Metadata, NewEvent, StateChanged
from wingman.engine.panel_events import node_stream
from wingman.engine.statechart import CHART_CHANGE_TRIGGER, Statechart, StatechartError, Trigger
from wingman.engine.store.database import create_engine
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.ownership import owned_elsewhere
from wingman.engine.store.schema import events as E

log = structlog.get_logger("wingman.statechart")

SHOWN = 20  # findings and servers in a refusal's message (`wingman audit replay` has them all)


class ChartRefused(StatechartError):
    """The configured chart would leave live servers in states it lacks; the message says which,
    with the what-if report, and how to accept it."""


@dataclass
class Judgement:
    chart: Statechart
    node: str | None
    found: list[Adoption]  # the charts recorded for this node, in log order
    before: Statechart  # the chart in force at the end of the log (the packaged one when none is recorded)
    report: WhatIf | None = None  # None: the same chart, nothing replayed
    live: set[str] = field(default_factory=set)  # servers registered and not deleted
    # Every server (deleted ones too) whose recorded state the chart lacks: (that state, where it goes).
    replacements: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def previous(self) -> str | None:
        return self.found[-1].chart_hash if self.found else None

    @property
    def unchanged(self) -> bool:
        return self.previous == self.chart.digest

    @property
    def stranded(self) -> dict[str, tuple[str, str]]:
        """The live servers the chart would leave in a state it lacks: why a start is refused."""
        return {uuid: where for uuid, where in self.replacements.items() if uuid in self.live}

    def decision(self, accepted: bool) -> Decision:
        if self.stranded:
            if not accepted:
                raise ChartRefused(refusal(self))
            return "operator_accepted"
        if self.previous is None and (self.report is None or self.report.events_checked == 0):
            return "first_start"
        return "history_accepted"


async def judge(engine: AsyncEngine, chart: Statechart, node: str | None) -> Judgement:
    """What adopting `chart` would mean on this node's log (reads only)."""
    found = await adoptions(engine, node)
    judgement = Judgement(chart, node, found, timeline(found))
    if judgement.unchanged:
        return judgement
    report = judgement.report = await replay_against(engine, chart, _source(chart), node=node)
    judgement.live = await live_servers(engine, node)
    for uuid, (recorded, replayed) in report.servers.items():
        if recorded not in chart.states:
            judgement.replacements[uuid] = (recorded, placement(judgement.before, chart, recorded, replayed))
    return judgement


def placement(before: Statechart, chart: Statechart, state: str, replayed: str) -> str:
    """Where a server in `state` (which `chart` lacks) goes: see the module doc."""
    if replayed in chart.states and replayed != chart.initial:
        return replayed
    # How the engine ends what may still run in that state (its process, its installer).
    ends = [t for t in (Trigger.EXITED, Trigger.INSTALLED) if before.allows(t, state)]
    if not ends:
        return replayed if replayed in chart.states else chart.initial
    candidates = [s for s in chart.states if s != chart.initial and all(chart.allows(t, s) for t in ends)]
    settled = [s for s in candidates if not chart.allows(Trigger.READY, s)]  # up, not booting
    return (settled or candidates or [chart.initial])[0]


async def live_servers(engine: AsyncEngine, node: str | None) -> set[str]:
    """The servers of this node registered and not deleted since (by their last such event)."""
    kinds = (EventType.SERVER_REGISTERED, EventType.SERVER_DELETED)
    query = (
        select(E.c.stream_id, E.c.type, func.max(E.c.position).label("at"))
        .where(E.c.type.in_(kinds))
        .group_by(E.c.stream_id, E.c.type)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    elsewhere = await owned_elsewhere(engine, node) if node is not None else set()
    registered = {r.stream_id: r.at for r in rows if r.type == EventType.SERVER_REGISTERED}
    deleted = {r.stream_id: r.at for r in rows if r.type == EventType.SERVER_DELETED}
    return {s for s, at in registered.items() if at > deleted.get(s, 0) and s not in elsewhere}


def _source(chart: Statechart) -> str:
    return chart.source or "the configured statechart"


def refusal(j: Judgement) -> str:
    """The message of a refused start: which servers, the what-if report (bounded), how to accept."""
    stranded = j.stranded
    before = f"sha256 {j.previous[:12]}" if j.previous else "none recorded: the packaged chart"
    lines = [
        f"the statechart {_source(j.chart)} (sha256 {j.chart.digest[:12]}) is not the one this node last "
        f"recorded ({before}), and it has no state for {len(stranded)} live server(s):",
    ]
    for uuid, (state, target) in sorted(stranded.items())[:SHOWN]:
        lines.append(f"  server {uuid} is {state!r}; accepted, it would be placed in {target!r}")
    if len(stranded) > SHOWN:
        lines.append(f"  ... and {len(stranded) - SHOWN} more")
    if j.report is not None:
        lines.append(
            f"What the new chart makes of this node's history (wingman audit replay --statechart {_source(j.chart)}):"
        )
        lines += render(j.report, "this node's history", SHOWN)
    lines.append(
        "Nothing was written. To start with this chart anyway: wingman serve --accept-chart-change "
        "(the decision is recorded in the log, and each server above is placed as said). "
        "Or set system.statechart back to the chart in force. See docs/statechart.md."
    )
    return "\n".join(lines)


async def adopt(store: EventStore, chart: Statechart, accepted: bool = False) -> Statechart:
    """Adopt `chart` on this node (see the module doc): ChartRefused when it may not be; else the
    chart as the log's timeline now places it (what the registry and the snapshots fold with)."""
    node = store.node_id
    j = await judge(store.engine, chart, node)
    if j.unchanged:
        return timeline(j.found, chart)
    decision = j.decision(accepted)  # raises ChartRefused
    report = j.report
    assert report is not None  # a changed chart is always replayed (judge)
    operator = decision == "operator_accepted"
    meta = Metadata(
        actor="operator" if operator else "daemon",
        channel="boot",
        cause=Cause.OPERATOR if operator else Cause.CONFIG_FILE,
    )
    adopted = StatechartAdopted(
        chart_hash=chart.digest,
        chart=chart.text,
        source=_source(chart),
        previous_hash=j.previous,
        decision=decision,
        counts=dict(report.counts),
        events_checked=report.events_checked,
        servers_replaced=len(j.replacements),
    )
    stream = node_stream(node)
    moved = meta.model_copy(update={"cause": Cause.STATECHART_CHANGE})
    # Queued together, the chart first (see the module doc).
    await asyncio.gather(
        store.append(stream, [NewEvent.of(adopted, meta)], expected_version=store.version(stream)),
        *(
            store.append(
                uuid,
                [NewEvent.of(_replaced(state, target), moved)],
                expected_version=store.version(uuid),
            )
            for uuid, (state, target) in j.replacements.items()
        ),
    )
    say = log.warning if report.counts else log.info
    say(
        "statechart adopted",
        chart=_source(chart),
        hash=chart.digest,
        previous=j.previous,
        decision=decision,
        servers_replaced=len(j.replacements),
        report="\n".join(render(report, "this node's history", SHOWN)),
    )
    return timeline(await adoptions(store.engine, node), chart)


def _replaced(state: str, target: str) -> StateChanged:
    return StateChanged(from_state=state, to_state=target, trigger=CHART_CHANGE_TRIGGER, cause=Cause.STATECHART_CHANGE)


def refusal_before_start(database_url: str, chart: Statechart, node: str | None, accepted: bool) -> str | None:
    """A look before the daemon starts (from the command, outside any loop): the refusal's message
    when the chart would be refused, so the command says it plainly and starts nothing; None
    when it would not, or when the database is not there or does not answer (the start decides)."""
    if accepted:
        return None
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).is_file()):
        return None  # no log yet: nothing to refuse, and nothing to create by looking

    async def look() -> str | None:
        engine = create_engine(database_url)
        try:
            j = await judge(engine, chart, node)
            return refusal(j) if not j.unchanged and j.stranded else None
        finally:
            await engine.dispose()

    try:
        return asyncio.run(look())
    except StatechartError:
        raise
    except Exception:  # noqa: BLE001 - see the doc: the daemon's own start decides, and says why
        return None
