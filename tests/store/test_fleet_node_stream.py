"""Each node's own stream of node-wide facts (docs/fleet.md): two nodes on one PostgreSQL database,
each under a Panel of its own, both record their Panel inventory, each on `node:<node id>`, where
before the second node's was refused (the first had claimed the one `node` stream)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from tests.support.daemon import DaemonProcess, definition
from tests.support.panel import PanelStandIn, wait_events, with_panel
from wingman.engine.store.database import create_engine

pytestmark = pytest.mark.postgres


async def _streams_of(pg_url: str, kind: str) -> dict[str, str]:
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as conn:
            q = text("SELECT node_id, stream_id FROM events WHERE type = :t")
            return {r[0]: r[1] for r in await conn.execute(q, {"t": kind})}
    finally:
        await engine.dispose()


async def test_each_node_records_its_panel_inventory_on_its_own_stream(tmp_path, pg_url):
    with PanelStandIn([definition()]) as panel_a, PanelStandIn([definition(), definition()]) as panel_b:
        nodes = [
            DaemonProcess(
                tmp_path / name,
                extra_config={"node_id": name, "database": {"url": pg_url}, **with_panel(panel)},
            )
            for name, panel in (("node-a", panel_a), ("node-b", panel_b))
        ]
        try:
            for d in nodes:
                await asyncio.to_thread(d.start, 60)
                await asyncio.to_thread(wait_events, d, "panel.inventory_reconciled")
            for d in nodes:
                assert "may not write there" not in d.read_log()
        finally:
            for d in nodes:
                d.stop()
    assert await _streams_of(pg_url, "panel.inventory_reconciled") == {"node-a": "node:node-a", "node-b": "node:node-b"}
