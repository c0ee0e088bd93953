"""What a changed statechart would make of the history already recorded
(`wingman audit replay --statechart NEW.yaml`; docs/audit.md).

Each recorded `state.changed` is asked of the new chart: may its trigger fire from the state it
left, and does it lead where it led? Every server is also replayed through the new chart alone
(a refused trigger leaves it where it was), to say whose state would now be different. Findings:

- `refused`: a recorded transition the new chart would not allow (server, position, time,
  from -> to, trigger);
- `elsewhere`: allowed, but the new chart leads somewhere else;
- `missing state`: a recorded state the new chart does not have (once per state, with how many
  events and servers were in it);
- `differs`: a server whose state, replayed through the new chart, is not the recorded one
  (its current state included: a server left in a state the new chart lacks is one).

Only the fields needed are read (the database extracts them; no event is parsed), a page at a
time, in log order: as fast as the daemon's own replay of the log. With `node`, only that node's
servers are replayed (a fleet's database holds other nodes' too): the daemon asks so at boot
before it adopts a changed chart (engine.charts.adoption). A server re-placed into the chart by an
accepted change (trigger `statechart_change`) is not a transition to judge: it is put where that
change placed it, when the chart replayed has that state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.event_types import EventType
from wingman.engine.statechart import CHART_CHANGE_TRIGGER, Statechart
from wingman.engine.store.ownership import owned_elsewhere
from wingman.engine.store.schema import events as E

PAGE = 5000
SHOWN = 1000  # findings kept in full; the counts cover them all

_FIELDS = (
    E.c.position,
    E.c.stream_id,
    type_coerce(E.c.recorded_at, String).label("recorded_at"),
    E.c.data["from_state"].as_string().label("from_state"),
    E.c.data["to_state"].as_string().label("to_state"),
    E.c.data["trigger"].as_string().label("trigger"),
)


@dataclass
class Finding:
    kind: str  # refused | elsewhere | missing state | differs
    server: str | None
    message: str
    position: int | None = None
    at: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    trigger: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class WhatIf:
    chart: str
    events_checked: int = 0
    servers_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # Every server replayed: (the state the log says it is in, where the new chart alone has it).
    servers: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    @property
    def accepted(self) -> bool:
        """The new chart accepts every recorded transition and every server's state."""
        return not self.counts

    def add(self, finding: Finding) -> None:
        self.counts[finding.kind] += 1
        if len(self.findings) < SHOWN:
            self.findings.append(finding)

    def as_dict(self) -> dict[str, Any]:
        return {
            "chart": self.chart,
            "accepted": self.accepted,
            "events_checked": self.events_checked,
            "servers_checked": self.servers_checked,
            "counts": dict(self.counts),
            "findings": [f.as_dict() for f in self.findings],
            "findings_shown": len(self.findings),
        }


@dataclass
class _Server:
    recorded: str  # the state the log says it is in
    replayed: str  # where the new chart alone would have it


async def replay_against(
    db: AsyncEngine,
    chart: Statechart,
    chart_name: str,
    server: str | None = None,
    since: datetime | None = None,
    node: str | None = None,
) -> WhatIf:
    """See the module doc. `node`: only that node's servers (those no other node owns)."""
    report = WhatIf(chart=chart_name)
    elsewhere: Collection[str] = await owned_elsewhere(db, node) if node is not None else ()
    servers: dict[str, _Server] = {}
    missing: dict[str, tuple[int, set[str]]] = {}  # state -> (events, servers)
    clauses = [E.c.type == EventType.STATE_CHANGED]
    if server is not None:
        clauses.append(E.c.stream_id == server)
    if since is not None:
        clauses.append(E.c.recorded_at >= since)
    after = 0
    while True:
        query = select(*_FIELDS).where(E.c.position > after, *clauses).order_by(E.c.position).limit(PAGE)
        async with db.connect() as conn:
            rows = (await conn.execute(query)).all()
        for row in rows:
            if row.stream_id not in elsewhere:
                _check(report, chart, servers, missing, row, since is not None)
        report.events_checked += len(rows)
        if len(rows) < PAGE:
            break
        after = rows[-1].position
    for state, (n, where) in missing.items():
        report.add(
            Finding(
                "missing state",
                None,
                f"state {state!r} is not in the new chart: {n} recorded transition(s) into or out of it, "
                f"{len(where)} server(s)",
                from_state=state,
            )
        )
    for uuid, s in servers.items():
        if s.replayed != s.recorded:
            report.add(
                Finding(
                    "differs",
                    uuid,
                    f"recorded {s.recorded!r}; through the new chart it would be {s.replayed!r}",
                    from_state=s.recorded,
                    to_state=s.replayed,
                )
            )
    report.servers_checked = len(servers)
    report.servers = {uuid: (s.recorded, s.replayed) for uuid, s in servers.items()}
    return report


def _check(
    report: WhatIf,
    chart: Statechart,
    servers: dict[str, _Server],
    missing: dict[str, tuple[int, set[str]]],
    row: Any,
    windowed: bool,
) -> None:
    source, dest, trigger = str(row.from_state), str(row.to_state), str(row.trigger)
    for state in {source, dest}:
        if state not in chart.states:
            n, where = missing.get(state, (0, set()))
            where.add(row.stream_id)
            missing[state] = (n + 1, where)
    s = servers.get(row.stream_id)
    if s is None:  # the server's first change in view
        # Its whole history: the new chart starts it in its own initial state. A window (--since):
        # where the log says it was at the window's first change.
        s = servers[row.stream_id] = _Server(recorded=source, replayed=source if windowed else chart.initial)
    if trigger == CHART_CHANGE_TRIGGER:  # re-placed by an accepted change: no transition to judge
        s.recorded = dest
        if dest in chart.states:
            s.replayed = dest
        return
    where_to = chart.table.get((trigger, source))
    detail = dict(position=row.position, at=row.recorded_at, from_state=source, to_state=dest, trigger=trigger)
    if where_to is None:
        report.add(Finding("refused", row.stream_id, f"{trigger} from {source} is not in the new chart", **detail))
    elif where_to != dest:
        report.add(
            Finding("elsewhere", row.stream_id, f"{trigger} from {source} leads to {where_to}, not {dest}", **detail)
        )
    s.recorded = dest
    s.replayed = chart.table.get((trigger, s.replayed), s.replayed)


def render(report: WhatIf, scope: str, shown: int) -> list[str]:
    """The report as text lines, at most `shown` findings (`wingman audit replay`, and the
    daemon's refusal of a changed chart at start)."""
    checked = f"{report.events_checked} transitions of {report.servers_checked} servers"
    if report.accepted:
        return [f"OK: {report.chart} accepts all of {scope}: {checked}."]
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts.items()))
    lines = [f"CHANGES: {report.chart} does not accept all of {scope} ({checked}): {counts}."]
    for f in report.findings[:shown]:
        where = f"server {f.server}" if f.server else "chart"
        at = f" at position {f.position} ({f.at})" if f.position is not None else ""
        lines.append(f"  {f.kind}: {where}{at}: {f.message}")
    total = sum(report.counts.values())
    if total > min(len(report.findings), shown):
        lines.append(f"  ... and {total - min(len(report.findings), shown)} more (use --format json)")
    return lines
