"""Checkpoints on PostgreSQL: the same table (JSON compact range, BYTEA leaves), the tree resumed at
boot from it, and verification finding a forged event with recomputed chains and a cut tail."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.support.checkpoints import build_signed_log, daemon_config
from wingman.engine.audit.verify import verify_everything
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon
from wingman.engine.store.database import create_engine
from wingman.engine.store.hashing import event_hash

pytestmark = pytest.mark.postgres


async def _forge(engine, stream: str) -> int:
    """The actor of a power.requested changed, and every later hash of its stream recomputed."""
    async with engine.begin() as conn:
        evs = (
            (await conn.execute(text("SELECT * FROM events WHERE stream_id = :s ORDER BY version"), {"s": stream}))
            .mappings()
            .all()
        )
        requests = [e for e in evs if e["type"] == "power.requested"]
        target = requests[len(requests) // 2]
        prev = next((e["hash"] for e in evs if e["version"] == target["version"] - 1), "0" * 64)
        for e in evs:
            if e["version"] < target["version"]:
                continue
            meta = dict(e["metadata"])
            if e["position"] == target["position"]:
                meta["actor"] = "panel-admin-alice"
            h = event_hash(
                stream_id=stream,
                version=e["version"],
                event_id=e["event_id"],
                type=e["type"],
                data=e["data"],
                metadata=meta,
                recorded_at=e["recorded_at"],
                prev_hash=prev,
            )
            await conn.execute(
                text("UPDATE events SET metadata = CAST(:m AS JSON), prev_hash = :p, hash = :h WHERE position = :pos"),
                {"m": json.dumps(meta), "p": prev, "h": h, "pos": e["position"]},
            )
            prev = h
    return target["position"]


async def test_checkpoints_on_postgres(pg_url, tmp_path):
    log = await build_signed_log(tmp_path, total=200, servers=3, every_events=20, database_url=pg_url)
    engine = create_engine(pg_url)
    try:
        report, cp = await verify_everything(engine, None, log.key, log.file)
        assert report.ok and cp.ok and cp.log_size == 200 and cp.believed >= 10 and cp.not_yet_covered == 0

        # A restart resumes the tree from the table's compact range.
        daemon = Daemon(parse_config(daemon_config(tmp_path, 20, database_url=pg_url)), runtimes={})
        await daemon.start()
        assert daemon.checkpointer.resumed.how == "resumed" and daemon.checkpointer.resumed.folded == 0
        await daemon.stop()  # boot recovery wrote a few events: the shutdown checkpoint covers them
        size = daemon.checkpointer.tree.size
        assert size > 200

        position = await _forge(engine, log.ids[1])
        report, cp = await verify_everything(engine, None, log.key, log.file)
        assert report.ok, "the per-stream chains were recomputed"
        assert not cp.ok and cp.first.position == position and cp.first.check == "root"

        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM events WHERE position > :p"), {"p": size - 4})
        _, cp = await verify_everything(engine, None, log.key, log.file)
        assert any(f.check == "truncation" and f.position == size - 3 for f in cp.findings)
    finally:
        await engine.dispose()
