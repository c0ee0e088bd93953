"""The auditor's packages (engine/audit, engine/diagrams), the operation log and the CLI's progress
bar pass `mypy --strict`, so a change that loses their types fails here."""

from __future__ import annotations

from tests.support.mypy_run import mypy

STRICT = [
    "-p",
    "wingman.engine.audit",
    "-p",
    "wingman.engine.diagrams",
    "-m",
    "wingman.engine.live.operation_log",
    "-m",
    "wingman.api.cli.progress",
]


def test_the_audit_and_its_diagrams_are_strictly_typed() -> None:
    done = mypy("--strict", *STRICT)
    assert done.returncode == 0, done.stdout + done.stderr
