"""What a verification of the signed checkpoints found: one node's log (`node`), or a fleet's, whose
report sums up its nodes' (`nodes`) and names the node of each problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wingman.engine.checkpoints.chain import ChainKey, CheckpointFinding


@dataclass
class CheckpointReport:
    trusted_key: str | None
    log_size: int = 0  # the events read: the node's own (its leaves), or the fleet's log
    checkpoints: int = 0  # distinct readable checkpoints, all copies together
    believed: int = 0
    covered: int = 0  # the largest size a believed checkpoint signed (leaves of the node's log)
    covered_position: int = 0  # the log position of the last event it covers
    not_yet_covered: int = 0  # events after it
    keys: list[ChainKey] = field(default_factory=list)
    table: int = 0
    file: int | None = None
    findings: list[CheckpointFinding] = field(default_factory=list)
    findings_total: int = 0
    warnings: list[str] = field(default_factory=list)
    node: str | None = None  # the node whose log this is (None: a fleet's report, or a log without nodes)
    nodes: list[CheckpointReport] = field(default_factory=list)  # a fleet's: each node's report

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
            "node": self.node,
            "trusted_key": self.trusted_key,
            "log_size": self.log_size,
            "checkpoints": self.checkpoints,
            "checkpoints_believed": self.believed,
            "in_table": self.table,
            "in_file": self.file,
            "covered_up_to_position": self.covered_position,
            "covered_events": self.covered,
            "not_yet_covered": self.not_yet_covered,
            "keys": self.keys,
            "first_bad_position": first.position if first else None,
            "first_bad_node": first.node if first else None,
            "first_problem": first.as_dict() if first else None,
            "problems": [f.as_dict() for f in self.findings],
            "problems_total": self.findings_total,
            "warnings": self.warnings,
            "nodes": [r.as_dict() for r in self.nodes],
        }


def fleet_report(trusted_key: str | None, reports: list[CheckpointReport], log_size: int) -> CheckpointReport:
    """The sum of several nodes' reports; each finding and warning keeps its node."""
    out = CheckpointReport(trusted_key, log_size=log_size, nodes=reports)
    for r in reports:
        out.checkpoints += r.checkpoints
        out.believed += r.believed
        out.table += r.table
        if r.file is not None:
            out.file = (out.file or 0) + r.file
        out.not_yet_covered += r.not_yet_covered
        out.covered_position = max(out.covered_position, r.covered_position)
        out.findings_total += r.findings_total
        out.findings.extend(r.findings)
        out.warnings.extend(f"node {r.node}: {w}" for w in r.warnings)
    return out
