"""Verification of the log against its signed checkpoints: the part of the audit that holds against
someone who can write the database.

The believed checkpoints (engine.checkpoints.chain: signatures, the key chain, the copies)
are checked in one pass over the log in position order, flat in memory (the compact range, and the
leaves since the last checkpoint):
- every leaf is recomputed from the row itself (engine.store.hashing.leaf_of), never read from
  the stored hash, so a row edited with every later hash of its stream recomputed still changes
  the root;
- the log must reproduce each checkpoint's root at its size, and hold at least as many events as
  the largest one (else it was cut short: truncation);
- positions run 1, 2, 3... (a missing one is a deleted event);
- consecutive checkpoints must be an append-only history: when the log reproduces the later one
  it must reproduce the earlier one too (else they fork), and where the log reproduces neither,
  the leaves the table kept with the later one must lead from the earlier root to the later one;
- where a root is not reproduced, the first position that differs is named: the leaves kept with
  the checkpoint are compared one by one with the log's, once they are shown to lead to the signed
  root (otherwise they prove nothing and the finding names the first position the checkpoint
  covers beyond the previous one).
Events after the last believed checkpoint are counted as not yet covered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.checkpoints.chain import MAX_FINDINGS, Chain, ChainKey, CheckpointFinding, Entry, load_chain
from wingman.engine.checkpoints.tree import CompactRange, leaf_hash
from wingman.engine.events import RecordedEvent
from wingman.engine.store.hashing import leaf_of
from wingman.engine.store.queries import EventFilter, high_water, iterate


@dataclass
class CheckpointReport:
    trusted_key: str | None
    log_size: int = 0
    checkpoints: int = 0  # distinct readable checkpoints, all copies together
    believed: int = 0
    covered: int = 0  # the largest size a believed checkpoint signed
    not_yet_covered: int = 0  # events after it
    keys: list[ChainKey] = field(default_factory=list)
    table: int = 0
    file: int | None = None
    findings: list[CheckpointFinding] = field(default_factory=list)
    findings_total: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.findings_total == 0

    @property
    def first(self) -> CheckpointFinding | None:
        placed = [f for f in self.findings if f.position is not None]
        return min(placed, key=lambda f: f.position or 0) if placed else (self.findings[0] if self.findings else None)

    def as_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "ok": self.ok,
            "trusted_key": self.trusted_key,
            "log_size": self.log_size,
            "checkpoints": self.checkpoints,
            "checkpoints_believed": self.believed,
            "in_table": self.table,
            "in_file": self.file,
            "covered_up_to_position": self.covered,
            "not_yet_covered": self.not_yet_covered,
            "keys": self.keys,
            "first_bad_position": first.position if first else None,
            "first_problem": first.as_dict() if first else None,
            "problems": [f.as_dict() for f in self.findings],
            "problems_total": self.findings_total,
            "warnings": self.warnings,
        }


class CheckpointVerifier:
    """Fed every event of the log in position order (`feed`), after `prepare`; `finish` reports."""

    def __init__(self, engine: AsyncEngine, trusted_key: str | None, checkpoint_file: Path | None = None):
        self.engine, self.trusted_key, self.checkpoint_file = engine, trusted_key, checkpoint_file
        self.report = CheckpointReport(trusted_key)
        self.tree = CompactRange()
        self._chain: Chain | None = None
        self._at: dict[int, list[Entry]] = {}  # size -> believed checkpoints of that size
        self._since: list[bytes] = []  # the log's leaves since the last size in _at
        self._last_range = CompactRange()
        self._expected = 1  # the next position
        self._gap_reported = False

    async def prepare(self) -> None:
        """Read the checkpoints. Call before the log's high-water mark is taken, so that every
        checkpoint read signs events that were already committed."""
        chain = self._chain = await load_chain(self.engine, self.trusted_key, self.checkpoint_file)
        for e in chain.believed:
            self._at.setdefault(e.size, []).append(e)
        if 0 in self._at:
            self._boundary()

    @property
    def chain(self) -> Chain:
        if self._chain is None:
            raise RuntimeError("prepare() reads the checkpoints first")
        return self._chain

    def _add(self, finding: CheckpointFinding) -> None:
        self.report.findings_total += 1
        if len(self.report.findings) < MAX_FINDINGS:
            self.report.findings.append(finding)

    def feed(self, ev: RecordedEvent, recomputed: str | None = None) -> None:
        """One event, in position order; `recomputed` is its hash from its contents, if known."""
        if ev.position != self._expected and not self._gap_reported:
            span = (
                f"position {self._expected} is"
                if ev.position == self._expected + 1
                else f"positions {self._expected} to {ev.position - 1} are"
            )
            if ev.position > self._expected:
                self._add(
                    CheckpointFinding(
                        "gap", f"{span} missing from the log: events were deleted", position=self._expected
                    )
                )
            else:
                self._add(
                    CheckpointFinding(
                        "gap",
                        f"position {ev.position} comes after {self._expected - 1}: the log's order was changed",
                        position=ev.position,
                    )
                )
            self._gap_reported = True  # one is enough: the roots below say the rest
        self._expected = ev.position + 1
        data = bytes.fromhex(recomputed) if recomputed is not None else leaf_of(ev)
        self.tree.append_hash(leaf_hash(data))
        self._since.append(data)
        if self.tree.size in self._at:
            self._boundary()

    def _boundary(self) -> None:
        size, root = self.tree.size, self.tree.root().hex()
        for e in self._at[size]:
            e.reproduced = root == e.signed.root
            e.log_range = self.tree.copy()
            if not e.reproduced:
                self._mismatch(e)
        self._since, self._last_range = [], self.tree.copy()

    def _mismatch(self, e: Entry) -> None:
        prev = self._previous(e)
        start = prev.size if prev is not None else 0
        position, how = start + 1, f"somewhere in positions {start + 1} to {e.size}"
        base = None
        if prev is not None:
            base = prev.log_range if prev.reproduced else prev.stored_range()
        elif start == 0:
            base = CompactRange()
        kept = e.leaves
        if base is not None and kept is not None and len(kept) == e.size - base.size:
            probe = base.copy()
            probe.extend(kept)
            if probe.root().hex() == e.signed.root and self._last_range.size == base.size:
                first = next((i for i, (a, b) in enumerate(zip(kept, self._since, strict=False)) if a != b), None)
                if first is None:
                    return  # the events it added are the ones it signed: an earlier finding explains it
                position, how = base.size + first + 1, "the event there is not the one it signed"
        self._add(
            CheckpointFinding(
                "root",
                f"the log no longer reproduces checkpoint {e.seq} (size {e.size}, signed "
                f"{e.signed.time}): {how} (edited, replaced, swapped or deleted)",
                position=position,
                seq=e.seq,
            )
        )

    def _previous(self, e: Entry) -> Entry | None:
        """The believed checkpoint just before `e` in the chain (the one its kept leaves start at)."""
        believed = self.chain.believed
        i = believed.index(e)
        return believed[i - 1] if i > 0 and believed[i - 1].seq == e.seq - 1 else None

    def finish(self) -> CheckpointReport:
        r, chain = self.report, self.chain
        r.log_size = self.tree.size
        for f in chain.findings:
            self._add(f)
        r.warnings.extend(chain.warnings)
        r.checkpoints, r.table, r.file, r.keys = len(chain.entries), chain.table_count, chain.file_count, chain.keys
        believed = chain.believed
        r.believed = len(believed)
        r.covered = max((e.size for e in believed), default=0)
        r.not_yet_covered = max(0, r.log_size - r.covered)
        beyond = [e for e in believed if e.size > r.log_size]
        if beyond:
            e = max(beyond, key=lambda x: x.size)
            self._add(
                CheckpointFinding(
                    "truncation",
                    f"the log holds {r.log_size} events, but checkpoint {e.seq} (signed {e.signed.time}) "
                    f"covers {e.size}: positions {r.log_size + 1} to {e.size} were removed",
                    position=r.log_size + 1,
                    seq=e.seq,
                )
            )
        self._consistency(believed)
        if not believed and r.log_size:
            r.warnings.append(
                f"no checkpoint can be believed: none of the {r.log_size} events is covered by a "
                "signature, so nothing shows the log was not rewritten"
            )
        return r

    def _consistency(self, believed: list[Entry]) -> None:
        for a, b in zip(believed, believed[1:], strict=False):
            if b.size < a.size:
                self._add(
                    CheckpointFinding(
                        "consistency",
                        f"checkpoint {b.seq} signs {b.size} events after checkpoint "
                        f"{a.seq} signed {a.size}: the signed history went back",
                        position=b.size + 1,
                        seq=b.seq,
                    )
                )
            elif b.reproduced and a.reproduced is False:
                self._add(
                    CheckpointFinding(
                        "consistency",
                        f"checkpoints {a.seq} and {b.seq} fork: the log reproduces "
                        f"{b.seq}, whose first {a.size} events are not the ones {a.seq} signed "
                        "(the history was rewritten between them)",
                        position=None,
                        seq=b.seq,
                    )
                )
            elif not b.reproduced and not self._kept_leaves_extend(a, b):
                self.report.warnings.append(
                    f"checkpoints {a.seq} -> {b.seq}: neither the log nor the leaves kept with "
                    f"{b.seq} show that {b.seq} extends {a.seq}"
                )

    @staticmethod
    def _kept_leaves_extend(a: Entry, b: Entry) -> bool:
        if b.size == a.size:
            return a.signed.root == b.signed.root
        base = a.log_range if a.reproduced else a.stored_range()
        if base is None or b.leaves is None or b.seq != a.seq + 1 or len(b.leaves) != b.size - a.size:
            return False
        probe = base.copy()
        probe.extend(b.leaves)
        return probe.root().hex() == b.signed.root


async def verify_checkpoints(
    engine: AsyncEngine, trusted_key: str | None, checkpoint_file: Path | None = None, page_size: int = 1000
) -> CheckpointReport:
    """The checkpoint checks alone, in a pass of their own (engine.audit.verify.verify_everything
    runs them in the pass of the per-stream checks)."""
    v = CheckpointVerifier(engine, trusted_key, checkpoint_file)
    await v.prepare()
    count = 0
    async for ev in iterate(engine, EventFilter(upto_position=await high_water(engine)), page_size=page_size):
        v.feed(ev)
        count += 1
        if count % page_size == 0:
            await asyncio.sleep(0)
    return v.finish()
