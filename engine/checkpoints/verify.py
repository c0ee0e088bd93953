"""Verification of the log against its signed checkpoints: the part of the audit that holds against
someone who can write the database.

Each node signs a log of its own (engine.checkpoints.resume: its leaves are its own events in
position order, after the events from before node ids), so each node's checkpoints are checked
against that node's events, with that node's key (engine.checkpoints.node_log), all in one pass
over the log in position order, flat in memory (per node the compact range, the leaves since its
last checkpoint, and the position of each leaf):
- every leaf is recomputed from the row itself (engine.store.hashing.leaf_of), never read from
  the stored hash, so a row edited with every later hash of its stream recomputed still changes
  the root;
- a node's events must reproduce each of its checkpoints' roots at its size, and be at least as
  many as the largest one (else its log was cut short: truncation);
- positions run 1, 2, 3... across the whole log (a missing one is a deleted event);
- consecutive checkpoints of a node must be an append-only history: when its events reproduce the
  later one they must reproduce the earlier one too (else they fork), and where they reproduce
  neither, the leaves the table kept with the later one must lead from the earlier root to the
  later one;
- where a root is not reproduced, the first position that differs is named, with its node.
Events after a node's last believed checkpoint are counted as not yet covered.

The keys: the auditor gives one (`--key KEY`: the node whose checkpoints it signed) or one per node
(`NODE=KEY`, several separated by spaces); a node given none is checked against the keys its own
checkpoints announce, with a warning that this proves nothing against someone who can write the
database. On a log with one node (SQLite) nothing of this shows: one node, one key, as before.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.checkpoints import storage
from wingman.engine.checkpoints.chain import CheckpointFinding, build_chain
from wingman.engine.checkpoints.node_log import NodeLogVerifier
from wingman.engine.checkpoints.report import CheckpointReport, fleet_report
from wingman.engine.events import RecordedEvent
from wingman.engine.store.queries import EventFilter, high_water, iterate
from wingman.engine.store.schema import events as E

__all__ = ["CheckpointReport", "CheckpointVerifier", "trusted_keys", "verify_checkpoints"]

_PAGE = 20000


def trusted_keys(trusted: str | None) -> tuple[str | None, dict[str, str]]:
    """(the key given for no node in particular, the keys given per node) from the trusted key's
    text: `KEY`, or `NODE=KEY ...` (a node id never holds `=`; a base64 key ends with one)."""
    bare: str | None = None
    by_node: dict[str, str] = {}
    for part in (trusted or "").split():
        node, eq, key = part.partition("=")
        if eq and key and "=" not in node:
            by_node[node] = key
        else:
            bare = part
    return bare, by_node


class CheckpointVerifier:
    """Fed every event of the log in position order (`feed`), after `prepare`; `finish` reports:
    the node's report on a log of one node, else the fleet's (each node's in `nodes`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        trusted_key: str | None,
        checkpoint_file: Path | None = None,
        node: str | None = None,
    ):
        self.engine, self.trusted_key, self.checkpoint_file, self.only = engine, trusted_key, checkpoint_file, node
        self._logs: dict[str | None, NodeLogVerifier] = {}
        self._runs: list[tuple[int, str | None]] = []  # (first position, node) of each run of one node's events
        self._run = 0
        self._mapped_to = 0  # the last position the runs know (events after it came during the check)
        self._fleet_findings: list[CheckpointFinding] = []
        self._expected = 1
        self._gap_reported = False
        self._events = 0

    async def prepare(self) -> None:
        """Read the checkpoints, then which node wrote each event. Call before the log's high-water
        mark is taken, so that every checkpoint read signs events that were already committed."""
        table = await storage.load(self.engine)
        file = await asyncio.to_thread(storage.read_file, self.checkpoint_file) if self.checkpoint_file else None
        event_nodes = await self._event_nodes()
        nodes = list(dict.fromkeys([*storage.nodes_of(table), *storage.nodes_of(file or []), *event_nodes]))
        nodes = [n for n in nodes if n]
        bare, by_node = trusted_keys(self.trusted_key)
        if len(nodes) <= 1 and self.only in (None, *nodes):
            node = nodes[0] if nodes else None
            key = by_node.get(node or "", bare) if by_node else bare
            self._logs[node] = NodeLogVerifier(node, build_chain(table, file, key), key)
            return
        await self._map_nodes()
        signers = {
            n: {k for s in table if s.node == n and s.signed for k in (s.signed.key, s.signed.next_key)} for n in nodes
        }
        bare_anywhere = bare is not None and any(bare in keys for keys in signers.values())
        for n in [self.only] if self.only is not None else nodes:
            key = by_node.get(n)
            if key is None and bare is not None and (bare in signers.get(n, set()) or not bare_anywhere):
                key = bare
            mine = [s for s in table if s.node == n]
            in_file = None if file is None else [s for s in file if s.signed is None or s.node == n]
            self._logs[n] = NodeLogVerifier(n, build_chain(mine, in_file, key), key)
        for n in sorted(set(by_node) - set(nodes)):
            self._fleet_findings.append(
                CheckpointFinding(
                    "key", f"a key was given for node {n}, which has no events or checkpoints here", node=n
                )
            )

    async def _event_nodes(self) -> list[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(E.c.node_id).where(E.c.node_id.is_not(None)).distinct())
            return sorted(str(r[0]) for r in rows)

    async def _map_nodes(self) -> None:
        """Runs of consecutive positions written by one node, for `feed` to route each event."""
        after = 0
        async with self.engine.connect() as conn:
            while True:
                q = select(E.c.position, E.c.node_id).where(E.c.position > after).order_by(E.c.position).limit(_PAGE)
                rows = (await conn.execute(q)).all()
                for position, node in rows:
                    if not self._runs or self._runs[-1][1] != node:
                        self._runs.append((int(position), node))
                if len(rows) < _PAGE:
                    break
                after = int(rows[-1][0])
        self._mapped_to = after if not rows else int(rows[-1][0])

    def _node_at(self, position: int) -> tuple[bool, str | None]:
        """(known, node) of the event at `position` (positions arrive in order)."""
        if position > self._mapped_to:
            return False, None
        runs = self._runs
        while self._run + 1 < len(runs) and runs[self._run + 1][0] <= position:
            self._run += 1
        return True, runs[self._run][1]

    def feed(self, ev: RecordedEvent, recomputed: str | None = None) -> None:
        """One event, in position order; `recomputed` is its hash from its contents, if known."""
        self._check_gap(ev.position)
        self._events += 1
        if not self._runs:  # one node: every event is its
            for log in self._logs.values():
                log.feed(ev, recomputed)
            return
        known, node = self._node_at(ev.position)
        if not known:
            return  # committed after the checkpoints were read: no checkpoint read covers it
        if node is None:  # from before node ids: it opens every node's log
            for log in self._logs.values():
                log.feed(ev, recomputed)
        elif node in self._logs:
            self._logs[node].feed(ev, recomputed)

    def _check_gap(self, position: int) -> None:
        if position != self._expected and not self._gap_reported:
            span = (
                f"position {self._expected} is"
                if position == self._expected + 1
                else f"positions {self._expected} to {position - 1} are"
            )
            if position > self._expected:
                f = CheckpointFinding(
                    "gap", f"{span} missing from the log: events were deleted", position=self._expected
                )
            else:
                f = CheckpointFinding(
                    "gap",
                    f"position {position} comes after {self._expected - 1}: the log's order was changed",
                    position=position,
                )
            self._fleet_findings.append(f)
            self._gap_reported = True  # one is enough: the roots below say the rest
        self._expected = position + 1

    def finish(self) -> CheckpointReport:
        reports = [log.finish() for log in self._logs.values()]
        if len(reports) == 1 and not self._runs:
            out = reports[0]
        else:
            out = fleet_report(self.trusted_key, reports, self._events)
            if self.only is not None and len(reports) == 1:
                out.node = self.only
        for f in self._fleet_findings:
            out.findings_total += 1
            out.findings.append(f)
        return out


async def verify_checkpoints(
    engine: AsyncEngine,
    trusted_key: str | None,
    checkpoint_file: Path | None = None,
    page_size: int = 1000,
    node: str | None = None,
) -> CheckpointReport:
    """The checkpoint checks alone, in a pass of their own, for every node's log or one `node`'s
    (engine.audit.verify.verify_everything runs them in the pass of the per-stream checks)."""
    v = CheckpointVerifier(engine, trusted_key, checkpoint_file, node)
    await v.prepare()
    count = 0
    async for ev in iterate(engine, EventFilter(upto_position=await high_water(engine)), page_size=page_size):
        v.feed(ev)
        count += 1
        if count % page_size == 0:
            await asyncio.sleep(0)
    return v.finish()
