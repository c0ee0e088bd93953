"""Which signed checkpoints to believe, before the log is read.

Checkpoints come from the database's table and, when the auditor has it, from the checkpoint file
kept out of the database's reach. Both are read leniently and merged by seq. A checkpoint is
believed when it reads, its signature checks, and it is signed by the key in force at its place in
the chain: the first checkpoint's key, then each key a checkpoint announces (`next_key`, signed
with the key before it). The key the auditor trusts must be in that chain; checkpoints signed by
another key, a rotation that the previous key did not announce, and a seq missing from every copy
are findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.checkpoints import storage
from wingman.engine.checkpoints.format import SignedCheckpoint
from wingman.engine.checkpoints.tree import CompactRange, ProofError

MAX_FINDINGS = 100


@dataclass
class CheckpointFinding:
    check: str  # checkpoint | signature | key | copies | root | consistency | truncation | gap
    message: str
    position: int | None = None  # the first log position this finding is about
    seq: int | None = None
    node: str | None = None  # the node whose log of checkpoints it is about (None: the log as a whole)

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "node": self.node,
            "position": self.position,
            "checkpoint_seq": self.seq,
            "problem": self.message,
        }

    def __str__(self) -> str:
        where = f"position {self.position}" if self.position is not None else "the checkpoints"
        node = f"node {self.node}, " if self.node else ""
        seq = f", checkpoint {self.seq}" if self.seq is not None else ""
        return f"{node}{where}{seq}: [{self.check}] {self.message}"


@dataclass
class Entry:
    """One distinct signed checkpoint, with what the table kept beside it."""

    signed: SignedCheckpoint
    sources: list[str] = field(default_factory=list)
    frontier: list[str] | None = None
    leaves: list[bytes] | None = None
    believed: bool = False
    reproduced: bool | None = None  # by the log (None: the log is shorter than it)
    log_range: CompactRange | None = None  # the log's compact range at its size

    @property
    def seq(self) -> int:
        return self.signed.seq

    @property
    def size(self) -> int:
        return self.signed.size

    def stored_range(self) -> CompactRange | None:
        """The table's compact range, if it reproduces the signed root (else it proves nothing)."""
        try:
            cr = CompactRange.from_hex(self.size, self.frontier or [])
        except ProofError:
            return None
        return cr if cr.root().hex() == self.signed.root else None


class ChainKey(TypedDict):
    """One key of the chain and the believed checkpoints it signed."""

    key: str
    first_seq: int
    last_seq: int


@dataclass
class Chain:
    entries: list[Entry]  # believed and not, by seq
    keys: list[ChainKey]  # the signing keys in order
    findings: list[CheckpointFinding]
    warnings: list[str]
    table_count: int = 0
    file_count: int | None = None

    @property
    def believed(self) -> list[Entry]:
        return [e for e in self.entries if e.believed]


def _read(
    table: list[storage.StoredCheckpoint],
    file: list[storage.StoredCheckpoint] | None,
    findings: list[CheckpointFinding],
    warnings: list[str],
) -> list[Entry]:
    by_seq: dict[int, list[Entry]] = {}
    for source, stored_list in (("table", table), ("file", file or [])):
        for i, st in enumerate(stored_list):
            if st.signed is None or st.problem:
                torn = source == "file" and i == len(stored_list) - 1 and "incomplete" in (st.problem or "")
                if torn:  # a crash in the middle of the last append: nothing to hide there
                    warnings.append(f"{st.where}: {st.problem}")
                else:
                    findings.append(CheckpointFinding("checkpoint", f"{st.where}: {st.problem}", seq=st.row_seq))
                if st.signed is None:
                    continue
            same = next((e for e in by_seq.get(st.signed.seq, []) if e.signed == st.signed), None)
            if same is None:
                same = Entry(st.signed)
                by_seq.setdefault(st.signed.seq, []).append(same)
            same.sources.append(source)
            if source == "table":
                same.frontier, same.leaves = st.frontier, st.leaf_list()
    return [e for seq in sorted(by_seq) for e in by_seq[seq]]


def build_chain(
    table: list[storage.StoredCheckpoint], file: list[storage.StoredCheckpoint] | None, trusted_key: str | None
) -> Chain:
    findings: list[CheckpointFinding] = []
    warnings: list[str] = []
    entries = _read(table, file, findings, warnings)
    chain = Chain(entries, [], findings, warnings, len(table), None if file is None else len(file))
    _copies(chain, file is not None)
    current: str | None = None
    last_good: Entry | None = None
    for e in entries:
        cp = e.signed
        if not cp.signature_ok():
            findings.append(
                CheckpointFinding(
                    "signature",
                    f"checkpoint {cp.seq} ({', '.join(e.sources)}): its signature "
                    "does not check: it was edited, or signed by someone else",
                    seq=cp.seq,
                )
            )
            continue
        if current is None:
            current = cp.key
        if cp.key != current:
            findings.append(
                CheckpointFinding(
                    "key",
                    f"checkpoint {cp.seq} is signed by key {cp.key}, but the key in force there is {current}: "
                    f"a key change that the previous key did not announce is refused",
                    seq=cp.seq,
                )
            )
            continue
        if chain.keys and chain.keys[-1]["key"] == cp.key:
            chain.keys[-1]["last_seq"] = cp.seq
        else:
            chain.keys.append({"key": cp.key, "first_seq": cp.seq, "last_seq": cp.seq})
        if last_good is not None and last_good.seq == cp.seq:
            findings.append(
                CheckpointFinding(
                    "consistency",
                    f"two different checkpoints are signed with seq {cp.seq}: the signer told two stories",
                    seq=cp.seq,
                )
            )
        e.believed, last_good = True, e
        if cp.next_key:
            current = cp.next_key
    _anchor(chain, trusted_key)
    _gaps(chain)
    return chain


def _anchor(chain: Chain, trusted_key: str | None) -> None:
    believed = chain.believed
    if not believed:
        return
    if trusted_key is None:
        chain.warnings.append(
            "no key given: the checkpoints were checked against the key they name themselves, which "
            "proves nothing against someone who can write the database; pass the daemon's public key"
        )
        return
    keys = [k["key"] for k in chain.keys]
    announced = [e.signed.next_key for e in believed if e.signed.next_key]
    if trusted_key not in keys and trusted_key not in announced:
        first = chain.keys[0]["key"]
        chain.findings.append(
            CheckpointFinding(
                "key",
                f"no checkpoint is signed by the key you trust ({trusted_key}); they are signed by {first}"
                + (" and the keys it announced" if len(keys) > 1 else "")
                + ": none of them can be believed",
                position=1,
                seq=believed[0].seq,
            )
        )
        for e in believed:
            e.believed = False
        return
    if keys[0] != trusted_key:
        trusted_at = keys.index(trusted_key) if trusted_key in keys else len(keys)
        before = [e.seq for e in believed if keys.index(e.signed.key) < trusted_at]
        chain.warnings.append(
            f"checkpoints {before[0]} to {before[-1]} are signed by earlier keys of the chain, "
            "linked to the key you trust only by the rotations they announce"
        )


def _copies(chain: Chain, have_file: bool) -> None:
    if not have_file:
        return
    in_table = {e.seq for e in chain.entries if "table" in e.sources}
    in_file = {e.seq for e in chain.entries if "file" in e.sources}
    agreed = {e.seq for e in chain.entries if len(e.sources) > 1}
    for seq in sorted(in_file - in_table)[:10]:
        chain.findings.append(
            CheckpointFinding(
                "copies",
                f"checkpoint {seq} is in the checkpoint file but not in the "
                "database: it was removed from the checkpoints table",
                seq=seq,
            )
        )
    for seq in sorted((in_file & in_table) - agreed)[:10]:
        chain.findings.append(
            CheckpointFinding(
                "copies", f"checkpoint {seq} in the database differs from the one in the checkpoint file", seq=seq
            )
        )
    only_table = sorted(in_table - in_file)
    if only_table:
        chain.warnings.append(
            f"{len(only_table)} checkpoint(s) are in the database but not in the file (seq "
            f"{only_table[0]}..{only_table[-1]}): the file lags, or the daemon stopped between the two"
        )


def _gaps(chain: Chain) -> None:
    seqs = sorted({e.seq for e in chain.entries})
    expected = 1
    for seq in seqs:
        if seq > expected:
            span = f"{expected}" if seq == expected + 1 else f"{expected} to {seq - 1}"
            chain.findings.append(
                CheckpointFinding("gap", f"checkpoint(s) {span} are missing from every copy (removed?)", seq=expected)
            )
        expected = seq + 1


async def load_chain(
    engine: AsyncEngine, trusted_key: str | None, checkpoint_file: Path | None, node: str | None = None
) -> Chain:
    """The chain of one node's checkpoints (`node`), or of the only node's (None)."""
    table = await storage.load(engine, node=node)
    file = storage.read_file(checkpoint_file) if checkpoint_file is not None else None
    if file is not None and node is not None:
        file = [s for s in file if s.signed is None or s.node == node]
    return build_chain(table, file, trusted_key)
