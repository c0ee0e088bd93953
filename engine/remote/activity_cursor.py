"""How far in the log another party has accepted what an outbox sends it: one row of
`outbox_cursors` (migration 0006), in the same database as the log.

The row holds a position in the log, nothing else, so it cannot disagree with the log about what
happened; it says only how much of it has been delivered. It moves forward only (the UPDATE says
so), and it is written through the store's writer (`write_beside`), so on SQLite it never contends
with the log's own commits for the write lock.

On PostgreSQL, where several nodes may share the database, each node has its own row per outbox
(`<name>@<node id>`; a name too long for the column by a hash of the node id), since each node
sends its own events (docs/fleet.md). A node that has no row of its own yet starts where the
outbox's row from before stood (`<name>`, shared by every node then): a single node upgraded
carries on where it was, and sends nothing twice. A SQLite file is one node's: its row keeps the
outbox's name.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import Insert, Update, insert, select, update

from wingman.engine.store.backends import backend_of
from wingman.engine.store.event_store import EventStore
from wingman.engine.store.schema import outbox_cursors as C

_NAME_MAX = 64  # outbox_cursors.name


def cursor_name(name: str, node_id: str | None) -> str:
    """The row of outbox `name` for node `node_id` (None: the one row of a node without an id)."""
    if node_id is None:
        return name
    full = f"{name}@{node_id}"
    return full if len(full) <= _NAME_MAX else f"{name}@{hashlib.sha256(node_id.encode()).hexdigest()[:32]}"


class OutboxCursor:
    def __init__(self, store: EventStore, name: str):
        self._store = store
        self.legacy = name  # the row every node shared before each had its own
        self.name = cursor_name(name, store.node_id if backend_of(store.engine).shared else None)
        self.position = 0  # everything up to here has been accepted (0: nothing yet)
        self._row_exists = False

    async def load(self) -> int:
        async with self._store.engine.connect() as conn:
            found = (await conn.execute(select(C.c.position).where(C.c.name == self.name))).scalar()
            self._row_exists = found is not None
            if found is None and self.name != self.legacy:
                found = (await conn.execute(select(C.c.position).where(C.c.name == self.legacy))).scalar()
        self.position = found or 0
        return self.position

    async def advance(self, position: int) -> None:
        """Durably record that everything up to `position` was accepted (returns once committed)."""
        if position <= self.position:
            return
        now = datetime.now(UTC)
        statement: Update | Insert
        if self._row_exists:
            statement = (
                update(C)
                .where(C.c.name == self.name, C.c.position < position)
                .values(position=position, updated_at=now)
            )
        else:
            statement = insert(C).values(name=self.name, position=position, updated_at=now)
        await self._store.write_beside([(statement, None)])
        self._row_exists = True
        self.position = position
