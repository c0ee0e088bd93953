"""The event store and the signed checkpoints pass `mypy --strict` (issue 27): engine.store (the
log, its queries and lenient reader, the SQLite and PostgreSQL backends, the fleet's ownership and
migration) and engine.checkpoints (format, tree, chain, verification, the checkpointer), so a
change that loses their types fails here."""

from __future__ import annotations

import pytest

from tests.support.mypy_run import mypy

PACKAGES = ["store", "checkpoints"]


@pytest.mark.timeout(600)
def test_the_store_and_the_checkpoints_are_strictly_typed() -> None:
    done = mypy("--strict", *(a for p in PACKAGES for a in ("-p", f"wingman.engine.{p}")))
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr
