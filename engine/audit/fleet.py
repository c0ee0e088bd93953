"""A fleet's shared database at a glance (docs/fleet.md, "Auditing a fleet"): every node, the
servers it owns or wrote, its last event (position and time), and the verification of its streams.

Each node's streams are verified by the same pass as `wingman audit verify` (engine.audit.verify),
restricted to them: hash chains, versions, transitions and operations. A finding names the node
that wrote its event. Streams that no node owns and whose events all predate node ids are
summed up under no node (`node` null). Each node's signed checkpoints (its own log: a node signs
its own events, engine.checkpoints) are checked too, in one more pass over the log for all of
them, against the keys given or else the keys the checkpoints announce.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.audit.nodes import streams_by_node
from wingman.engine.audit.report import Report
from wingman.engine.audit.verify import verify
from wingman.engine.checkpoints.report import CheckpointReport
from wingman.engine.checkpoints.verify import verify_checkpoints
from wingman.engine.store.points import iso
from wingman.engine.store.schema import events as E


def _is_server(stream: str) -> bool:
    """A server's stream is named by its uuid; other streams (the node's inventory) are not servers."""
    try:
        uuidlib.UUID(stream)
    except ValueError:
        return False
    return True


def _time(raw: object) -> str | None:
    """A stored time as RFC 3339 UTC; a time that does not read (edited by hand) as it is stored."""
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return iso(raw)
    try:
        ts = datetime.fromisoformat(str(raw))
    except ValueError:
        return str(raw)
    return iso(ts if ts.tzinfo else ts.replace(tzinfo=UTC))


@dataclass
class NodeSummary:
    node: str | None  # None: the events written before node ids, in streams no node owns
    streams: list[str]
    events: int  # the events that carry the node's id
    last_position: int | None
    last_time: str | None
    report: Report | None = None  # None: not verified
    checkpoints: CheckpointReport | None = None  # its log of signed checkpoints; None: not checked

    @property
    def problems(self) -> int:
        return sum(r.findings_total for r in (self.report, self.checkpoints) if r is not None)

    @property
    def servers(self) -> list[str]:
        return [s for s in self.streams if _is_server(s)]

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def as_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "node": self.node,
            "servers": self.servers,
            "other_streams": [s for s in self.streams if not _is_server(s)],
            "events": self.events,
            "last_event": None
            if self.last_position is None
            else {"position": self.last_position, "time": self.last_time},
            "verify": None
            if r is None
            else {
                "ok": r.ok,
                "checked_up_to_position": r.high_water,
                "events_checked": r.events_checked,
                "streams_checked": r.streams_checked,
                "problems_total": r.findings_total,
                "first_problem": r.first.as_dict() if r.first else None,
                "open_operations": r.open_operations,
                "warnings": r.warnings,
            },
            "checkpoints": None if self.checkpoints is None else self.checkpoints.as_dict(),
        }


@dataclass
class FleetSummary:
    nodes: list[NodeSummary]
    verified: bool

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.nodes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok if self.verified else None,
            "verified": self.verified,
            "nodes": [n.as_dict() for n in self.nodes],
        }


async def _last_events(engine: AsyncEngine) -> dict[str | None, tuple[int, int, str | None]]:
    """Per node: how many events carry its id, and its last one's position and time."""
    per_node = select(E.c.node_id, func.count(), func.max(E.c.position)).group_by(E.c.node_id)
    async with engine.connect() as conn:
        counts = {r[0]: (int(r[1]), int(r[2])) for r in await conn.execute(per_node)}
        last = [p for _, p in counts.values()]
        when_q = select(E.c.position, type_coerce(E.c.recorded_at, String)).where(E.c.position.in_(last))
        when = {int(r[0]): _time(r[1]) for r in await conn.execute(when_q)} if last else {}
    return {node: (n, p, when.get(p)) for node, (n, p) in counts.items()}


async def fleet_summary(
    engine: AsyncEngine,
    verify_streams: bool = True,
    only: str | None = None,
    progress: Callable[[str | None], None] | None = None,
    trusted_key: str | None = None,
) -> FleetSummary:
    """The summary of every node (or of the node `only`), each verified unless `verify_streams`
    is false, its checkpoints against `trusted_key` (`KEY`, or `NODE=KEY ...`; None: the keys they
    announce). `progress` is told each node before its streams are verified."""
    grouped = await streams_by_node(engine)
    last = await _last_events(engine)
    names = set(grouped) | set(last)
    if only is not None:
        names &= {only}
    nodes = []
    # The named nodes by name, then the events of no node.
    for node in sorted(n for n in names if n is not None) + ([None] if None in names else []):
        count, position, time = last.get(node, (0, None, None))
        nodes.append(NodeSummary(node, sorted(grouped.get(node, set())), count, position, time))
    if verify_streams:
        for summary in nodes:
            if progress is not None:
                progress(summary.node)
            summary.report = await verify(engine, streams=summary.streams, node=summary.node)
        if progress is not None:
            progress(None)
        signed = await verify_checkpoints(engine, trusted_key, node=only)
        for report in signed.nodes or [signed]:
            for summary in nodes:
                # A log of one node reports as that node (or as none: a log from before node ids).
                if summary.node == report.node or (len(nodes) == 1 and not signed.nodes):
                    summary.checkpoints = report
    return FleetSummary(nodes, verify_streams)
