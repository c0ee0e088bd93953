"""PostgreSQL, for fleets: every statement through SQLAlchemy's async engine (asyncpg), one round
trip each (engine.store.backends.async_engine).

- connections: a pool of 5 (and 5 more at a peak), each checked before use, so that a database
  restarted (or a standby promoted) under the daemon costs a reconnect, not a failed commit; a
  group whose server went away is said unavailable (a 503, retried), never refused, and one whose
  commit may have landed is looked for first (engine.store.backends.postgres_failover); a
  multi-host URL's timeouts are read as seconds (`_timeouts`, docs/postgres.md);
- appends (`PostgresWriter`): one transaction a group that reads the log's end and inserts every
  row in one `INSERT ... SELECT FROM unnest(arrays)`: one statement the server plans and runs
  once, where an executemany is one Bind and Execute per row (measured with asyncpg alone, groups
  of 200: 20 us of server CPU per event instead of 31, and SQLAlchemy's work on every row's
  parameters gone from the client). Data and metadata go in as the canonical JSON texts made for
  the hash, cast to json by the server. The positions are the writer's, gapless and in commit
  order (a BIGSERIAL is drawn before commit: see engine.store.backends.protocol);
- several writers (the nodes of a fleet, docs/fleet.md): each group's transaction first takes one
  transaction-level advisory lock, the log's, held to its commit, and only then reads the log's
  end: groups of every node are one after the other, each numbered after the last committed one,
  so a reader of "after position N" never meets a smaller position committing later, and no
  group loses a race for a position. Then the node's first write to a stream claims it
  (engine.store.ownership): a write to another node's stream is refused, and the group with it;
- JSON: `->>` on the json columns (the server refuses malformed JSON: no row needs guarding).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, ColumnElement, Text, bindparam, cast, func, insert, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from wingman.engine.store import ownership
from wingman.engine.store.backends import async_engine
from wingman.engine.store.backends.async_engine import AsyncWriter
from wingman.engine.store.backends.postgres_failover import per_host_connect, unavailable_when_lost
from wingman.engine.store.backends.protocol import WRITE_TRANSACTION
from wingman.engine.store.hashing import json_loads
from wingman.engine.store.schema import events as E

_LAST_POSITION = select(func.max(E.c.position))

# The log's lock: one 64-bit advisory key, the same for every writer of the database ("wingmlog"
# in ASCII; a node's own lock, engine.fleet.node_lock, is keyed from its node id).
LOG_LOCK_KEY = int.from_bytes(b"wingmlog", "big")
_SERIALIZE = select(func.pg_advisory_xact_lock(LOG_LOCK_KEY))

# A group as one statement over one array per column (see the module doc).
_ROW_COLUMNS = (
    "position",
    "stream_id",
    "version",
    "event_id",
    "type",
    "data",
    "metadata",
    "recorded_at",
    "prev_hash",
    "hash",
    "node_id",
)
_AS_TEXT = {"data": "data_json", "metadata": "metadata_json"}  # the canonical texts, cast to json
_GROUP_ROWS = (
    func.unnest(*[bindparam(c, type_=ARRAY(Text if c in _AS_TEXT else E.c[c].type)) for c in _ROW_COLUMNS])
    .table_valued(*_ROW_COLUMNS)
    .render_derived(name="group_rows")
)
_GROUP_INSERT = insert(E).from_select(
    list(_ROW_COLUMNS),
    select(*[cast(_GROUP_ROWS.c[c], E.c[c].type) if c in _AS_TEXT else _GROUP_ROWS.c[c] for c in _ROW_COLUMNS]),
)


def _group_arrays(rows: list[dict[str, Any]], positions: list[int]) -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {c: [r.get(_AS_TEXT.get(c, c)) for r in rows] for c in _ROW_COLUMNS[1:]}
    arrays["position"] = positions
    return arrays


class PostgresWriter(AsyncWriter):
    def __init__(self, engine: AsyncEngine):
        super().__init__(engine)
        # (node, stream) pairs this writer has claimed or found already claimed: asked once each
        # (a handover happens while the old node is stopped: engine.store.ownership.hand_over).
        self._owned: set[tuple[str, str]] = set()

    @unavailable_when_lost
    async def insert(self, rows: list[dict[str, Any]]) -> list[int]:
        unclaimed = {(r["node_id"], r["stream_id"]) for r in rows if r.get("node_id")} - self._owned
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**WRITE_TRANSACTION)
            async with conn.begin():
                await conn.execute(_SERIALIZE)  # held to the commit: see the module doc
                for node in {n for n, _ in unclaimed}:
                    await ownership.claim(conn, node, [s for n, s in unclaimed if n == node])
                last: int = (await conn.execute(_LAST_POSITION)).scalar() or 0
                positions = list(range(last + 1, last + 1 + len(rows)))
                await conn.execute(_GROUP_INSERT, _group_arrays(rows, positions))
        self._owned |= unclaimed
        return positions


# asyncpg's timeouts, in seconds, as the URL's query may give them (`?timeout=3&command_timeout=30`,
# docs/postgres.md): SQLAlchemy hands query values to asyncpg as text, which asyncpg cannot add
# to a time, so they are read here. `timeout` bounds each host's connection attempt (asyncpg
# waits 60 s by default before it tries the next host of a multi-host URL), `command_timeout`
# each statement (a commit on a primary that vanished without a reset would wait for TCP).
_TIMEOUTS = ("timeout", "command_timeout")


def _timeouts(url: str) -> dict[str, float]:
    query = make_url(url).query
    return {k: float(str(query[k])) for k in _TIMEOUTS if k in query}


# An advisory lock key of the migrations' own (any 64-bit number no other lock of the daemon uses:
# the log's lock and the node locks are keyed elsewhere).
MIGRATIONS_LOCK = 0x77696E676D616E  # "wingman" in ASCII


class PostgresBackend:
    name = "postgresql"
    shared = True

    def create_engine(self, url: str) -> AsyncEngine:
        return create_async_engine(
            url,
            pool_size=5,
            max_overflow=5,
            pool_pre_ping=True,
            json_deserializer=json_loads,
            connect_args=_timeouts(url),
            async_creator=per_host_connect(url),
        )

    def group_writer(self, engine: AsyncEngine) -> PostgresWriter:
        return PostgresWriter(engine)

    read = staticmethod(async_engine.read)
    walk = staticmethod(async_engine.walk)

    def json_text(self, column: Column[Any], key: str) -> ColumnElement[str]:
        text: ColumnElement[str] = column[key].as_string()
        return text

    def operation_id(self) -> ColumnElement[str]:
        return literal_column("(metadata->>'operation_id')")

    def migrations_take_turns(self) -> str:
        # Held to the migration's commit: a second daemon waits, then finds the schema made (two
        # at once would both create alembic_version, and one would fail).
        return f"SELECT pg_advisory_xact_lock({MIGRATIONS_LOCK})"


BACKEND = PostgresBackend()
