"""Helpers of the fleet tests (docs/fleet.md): a daemon as a node of a fleet on one PostgreSQL
database, SQL run on that database, and a reader following the log by position."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from tests.support.daemon import DaemonProcess
from wingman.engine.store.database import create_engine
from wingman.engine.store.schema import events as E


def fleet_node(folder: Path, pg_url: str, node_id: str, servers: list[dict], **extra: Any) -> DaemonProcess:
    """A daemon (not started) with its node id, on the fleet's database."""
    return DaemonProcess(
        folder, servers=servers, extra_config={"node_id": node_id, "database": {"url": pg_url}, **extra}
    )


async def fleet_sql(pg_url: str, statement: str, **params: object) -> list[tuple]:
    """`statement` run in a transaction of its own; its rows, if any."""
    engine = create_engine(pg_url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        await engine.dispose()


class TailReader(threading.Thread):
    """Follows the log as the SSE stream and the checkpointer do: "every event after position N",
    again and again, remembering what it saw."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.seen: list[tuple[int, str]] = []
        self.reads = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._follow())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    async def _follow(self) -> None:
        engine = create_engine(self.url)
        try:
            last_pass = False
            while True:
                after = self.seen[-1][0] if self.seen else 0
                async with engine.connect() as conn:
                    q = select(E.c.position, E.c.event_id).where(E.c.position > after).order_by(E.c.position)
                    self.seen += [(r[0], r[1]) for r in await conn.execute(q)]
                self.reads += 1
                if last_pass:
                    return
                last_pass = self.done.is_set()  # one more read once the writers are done
        finally:
            await engine.dispose()
