"""A single node's checkpoints across migration 0008 (checkpoints per node): a SQLite log signed
before it (the table keyed by seq alone, no node column) still verifies, as a copy an auditor was
given and once migrated; the migrated rows are the node's own log, and the daemon resumes its tree
from them instead of folding the log again."""

from __future__ import annotations

import sqlite3

from alembic import command
from sqlalchemy import create_engine as create_sync_engine

from tests.support.checkpoints import averdict, build_signed_log, daemon_config
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.store.database import _alembic_config


def _downgrade_to_0007(db) -> None:
    """The log as it was before checkpoints were per node (alembic's own downgrade of 0008)."""
    engine = create_sync_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0007_node_ids")
    finally:
        engine.dispose()


def _columns(db) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[1] for r in con.execute("PRAGMA table_info(checkpoints)")]
    finally:
        con.close()


async def test_a_single_nodes_checkpoints_from_before_0008_verify_and_resume(tmp_path):
    log = await build_signed_log(tmp_path / "node", total=120, every_events=20)
    _downgrade_to_0007(log.db)
    assert "node_id" not in _columns(log.db)

    # A copy from before 0008, verified as it is: unchanged for the user.
    code, doc, said = await averdict(log, key=log.key)
    assert code == 0, said
    assert doc["checkpoints"]["checkpoints_believed"] >= 5 and doc["checkpoints"]["covered_up_to_position"] == 120
    assert "positions 1 to 120 are covered" in said

    # The daemon migrates it: the rows are the node's, and its tree resumes from the latest.
    daemon = Daemon(parse_config(daemon_config(tmp_path / "node", every_events=20)), runtimes={})
    await daemon.start()
    try:
        resumed = daemon.checkpointer.resumed
        assert resumed is not None and (resumed.how, resumed.folded, resumed.problem) == ("resumed", 0, None)
    finally:
        await daemon.stop()
    con = sqlite3.connect(log.db)
    try:
        nodes = {r[0] for r in con.execute("SELECT node_id FROM checkpoints")}
        uptos = [tuple(r) for r in con.execute("SELECT size, upto_position FROM checkpoints ORDER BY seq")]
    finally:
        con.close()
    assert nodes == {"test-node"}
    assert all(size == upto for size, upto in uptos)
    code, doc, said = await averdict(log, key=log.key)
    assert code == 0, said
    assert doc["checkpoints"]["node"] == "test-node" and doc["checkpoints"]["nodes"] == []
