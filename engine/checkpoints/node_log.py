"""One node's log against its believed checkpoints (engine.checkpoints.verify runs one per node).

A node's leaves are its own events in position order, after the events from before node ids
(engine.checkpoints.resume), so a checkpoint's size counts the node's events, not positions: the
verifier keeps the position of each leaf to name the event a finding is about.
"""

from __future__ import annotations

from array import array

from wingman.engine.checkpoints.chain import MAX_FINDINGS, Chain, CheckpointFinding, Entry
from wingman.engine.checkpoints.report import CheckpointReport
from wingman.engine.checkpoints.tree import CompactRange, leaf_hash
from wingman.engine.events import RecordedEvent
from wingman.engine.store.hashing import leaf_of


class NodeLogVerifier:
    """Fed the node's events in position order (`feed`); `finish` reports."""

    def __init__(self, node: str | None, chain: Chain, trusted_key: str | None):
        self.node, self.chain = node, chain
        self.report = CheckpointReport(trusted_key, node=node)
        self.tree = CompactRange()
        self._positions = array("q")  # the log position of each leaf
        self._at: dict[int, list[Entry]] = {}  # size -> believed checkpoints of that size
        self._since: list[bytes] = []  # the log's leaves since the last size in _at
        self._last_range = CompactRange()
        for e in chain.believed:
            self._at.setdefault(e.size, []).append(e)
        if 0 in self._at:
            self._boundary()

    def add(self, finding: CheckpointFinding) -> None:
        finding.node = self.node
        self.report.findings_total += 1
        if len(self.report.findings) < MAX_FINDINGS:
            self.report.findings.append(finding)

    def position_of(self, leaf: int) -> int | None:
        """The log position of the node's `leaf`-th event (1-based); None beyond its log."""
        return self._positions[leaf - 1] if 0 < leaf <= len(self._positions) else None

    def feed(self, ev: RecordedEvent, recomputed: str | None = None) -> None:
        """One of the node's events, in position order; `recomputed` is its hash from its contents, if known."""
        data = bytes.fromhex(recomputed) if recomputed is not None else leaf_of(ev)
        self.tree.append_hash(leaf_hash(data))
        self._positions.append(ev.position)
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
        leaf, how = start + 1, self._span(start + 1, e.size)
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
                leaf, how = base.size + first + 1, "the event there is not the one it signed"
        self.add(
            CheckpointFinding(
                "root",
                f"the log no longer reproduces checkpoint {e.seq} (size {e.size}, signed "
                f"{e.signed.time}): {how} (edited, replaced, swapped or deleted)",
                position=self.position_of(leaf),
                seq=e.seq,
            )
        )

    def _span(self, first: int, last: int) -> str:
        a, b = self.position_of(first), self.position_of(last)
        if a is not None and b is not None and (a, b) == (first, last):
            return f"somewhere in positions {a} to {b}"
        if a is not None and b is not None:
            return f"somewhere in this node's events {first} to {last} (positions {a} to {b})"
        return f"somewhere in this node's events {first} to {last}"

    def _previous(self, e: Entry) -> Entry | None:
        """The believed checkpoint just before `e` in the chain (the one its kept leaves start at)."""
        believed = self.chain.believed
        i = believed.index(e)
        return believed[i - 1] if i > 0 and believed[i - 1].seq == e.seq - 1 else None

    def finish(self) -> CheckpointReport:
        r, chain = self.report, self.chain
        r.log_size = self.tree.size
        for f in chain.findings:
            self.add(f)
        r.warnings.extend(chain.warnings)
        r.checkpoints, r.table, r.file, r.keys = len(chain.entries), chain.table_count, chain.file_count, chain.keys
        believed = chain.believed
        r.believed = len(believed)
        r.covered = max((e.size for e in believed), default=0)
        r.covered_position = self.position_of(min(r.covered, r.log_size)) or 0
        r.not_yet_covered = max(0, r.log_size - r.covered)
        beyond = [e for e in believed if e.size > r.log_size]
        if beyond:
            e = max(beyond, key=lambda x: x.size)
            last = self.position_of(r.log_size) or 0
            if last == r.log_size:
                what = f"the log holds {r.log_size} events"
                gone = f"positions {r.log_size + 1} to {e.size} were removed"
            else:
                what = f"node {self.node}'s log holds {r.log_size} events (up to position {last})"
                gone = f"{e.size - r.log_size} of its events after position {last} were removed"
            self.add(
                CheckpointFinding(
                    "truncation",
                    f"{what}, but checkpoint {e.seq} (signed {e.signed.time}) covers {e.size}: {gone}",
                    position=last + 1,
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
                self.add(
                    CheckpointFinding(
                        "consistency",
                        f"checkpoint {b.seq} signs {b.size} events after checkpoint "
                        f"{a.seq} signed {a.size}: the signed history went back",
                        position=self.position_of(b.size + 1),
                        seq=b.seq,
                    )
                )
            elif b.reproduced and a.reproduced is False:
                self.add(
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
