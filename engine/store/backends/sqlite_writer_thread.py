"""The SQLite backend's writer thread (`ThreadWriter`): a synchronous SQLAlchemy connection owned
by one thread, which runs a group's whole transaction in one call, and once it knows where the
log ends writes a group as a single guarded autocommit INSERT. The event loop hands the group over
once and gets the positions back once; through aiosqlite every statement costs several hand-offs
between the loop and the driver's thread, which was most of an append's time.

Why it is built this way, with the measurements behind each choice, is in docs/write-path.md
("The write path"): a design read without the code belongs with the docs. The notes beside the
code below keep the figure each line answers to; change the page when a choice here changes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Insert, Text, bindparam, func, insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.store.backends.protocol import WRITE_TRANSACTION, GroupRow, Statements
from wingman.engine.store.backends.sqlite_driver import driver_cursor
from wingman.engine.store.schema import events as E

_LAST_POSITION = select(func.max(E.c.position))
_COLUMNS = ("stream_id", "version", "event_id", "type", "prev_hash", "hash", "node_id")


# The JSON columns take the canonical texts as they are, and the time the text SQLAlchemy's
# DateTime would have written (computed once per group: every row of a group shares its time).
# The statement is SQLAlchemy's own insert compiled for SQLite once; each group then goes to the
# driver as plain tuples through SQLAlchemy's connection (exec_driver_sql: transaction, events and
# error wrapping as usual). Building SQLAlchemy's per-row parameter dicts held the GIL long enough
# on the writer thread to stall the event loop's socket writes behind it.
_SQLITE_ORDER = (
    "position",
    "stream_id",
    "version",
    "event_id",
    "type",
    "data_json",
    "metadata_json",
    "recorded_at_text",
    "prev_hash",
    "hash",
    "node_id",
)  # the table's column order
_SQLITE_INSERT = insert(E).values(
    position=bindparam("position"),
    **{c: bindparam(c) for c in _COLUMNS},
    data=bindparam("data_json", type_=Text),
    metadata=bindparam("metadata_json", type_=Text),
    recorded_at=bindparam("recorded_at_text", type_=Text),
)


def _positional_sqlite(statement: Insert) -> str:
    compiled = statement.compile(dialect=sqlite.dialect(paramstyle="qmark"))
    if compiled.positiontup is None or tuple(compiled.positiontup) != _SQLITE_ORDER:  # the tuples below follow it
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
    return str(compiled)


_SQLITE_INSERT_SQL = _positional_sqlite(_SQLITE_INSERT)
_SQLITE_LAST_POSITION_SQL = str(_LAST_POSITION.compile(dialect=sqlite.dialect()))

# A group in one autocommit statement, when the writer knows where the log ends (see `_commit`):
# the rows go in only if the log still ends there. The statement has a power-of-two number of row
# slots, the unused ones NULL and filtered out, so that a handful of statements (each prepared
# once, in the driver's statement cache) serve every group size up to the largest.
_SQLITE_GUARDED_MAX_ROWS = 1024  # 10,240 parameters: well under SQLite's limit of 32,766
_COLUMN_COUNT = len(_SQLITE_ORDER)
_HANDOVER_WAIT = 0.0005  # s the loop waits at most for the writer thread to start a group (see `insert`)


def _guarded_insert_sql(slots: int) -> str:
    head, _, one_row = _SQLITE_INSERT_SQL.partition(" VALUES ")
    return (
        f"{head} SELECT * FROM (VALUES {', '.join([one_row] * slots)}) "
        f"WHERE column1 IS NOT NULL AND coalesce(({_SQLITE_LAST_POSITION_SQL}), 0) = ?"
    )


_SQLITE_GUARDED_SQL = {1 << k: _guarded_insert_sql(1 << k) for k in range(_SQLITE_GUARDED_MAX_ROWS.bit_length())}


class ThreadWriter:
    def __init__(self, engine: AsyncEngine, sync_engine: Callable[[AsyncEngine], Engine]):
        self._async_engine = engine
        self._sync_engine = sync_engine  # a synchronous engine on the same file, set up as the async one
        self._engine: Engine | None = None
        self._conn: Connection | None = None  # touched only on the writer thread
        self._driver_cursor: sqlite3.Cursor | None = None  # that connection's DBAPI cursor, for the groups
        self._thread: ThreadPoolExecutor | None = None
        self._time_text: Callable[[datetime], Any] | None = None  # the dialect's spelling of a time (open)
        self._driver_error: type[Exception] = Exception
        self._log_end: int | None = None  # the last position this thread committed; None: read it

    async def open(self) -> None:
        self._engine = self._sync_engine(self._async_engine)
        dialect = self._engine.dialect
        self._time_text = E.c.recorded_at.type.dialect_impl(dialect).bind_processor(dialect) or str
        self._driver_error = dialect.loaded_dbapi.Error
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-store-writer")

    async def close(self) -> None:
        if self._thread is None:
            return
        await asyncio.get_running_loop().run_in_executor(self._thread, self._disconnect)
        self._thread.shutdown(wait=True)
        self._thread = None
        if self._engine is not None:  # (it is: open made both)
            self._engine.dispose()

    async def insert(self, rows: list[GroupRow]) -> list[int]:
        # The writer thread wakes with the group in hand but cannot run until it holds the GIL,
        # and a busy event loop gives the GIL up only for moments too short for a waking thread
        # to take it: the thread used to wait until the loop next went idle (1.2-1.8 ms a group,
        # measured under the HTTP load; longer than its INSERT). So the loop blocks, briefly,
        # until the thread has started the group (about 0.1 ms), and the thread's time under
        # SQLite overlaps the loop's work from then on.
        started = threading.Lock()
        started.acquire()
        committed = asyncio.get_running_loop().run_in_executor(self._thread, self._start_commit, rows, started)
        started.acquire(timeout=_HANDOVER_WAIT)
        return await committed

    def _start_commit(self, rows: list[GroupRow], started: threading.Lock) -> list[int]:
        started.release()
        return self._commit(rows)

    async def write_beside(self, statements: Statements) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._commit_beside, statements)

    # -- on the writer thread ------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None:
            if self._engine is None:
                raise RuntimeError("the SQLite writer is not open")
            self._conn = self._engine.connect().execution_options(**WRITE_TRANSACTION)
        return self._conn

    def _commit_beside(self, statements: Statements) -> None:
        conn = self._connection()
        try:
            with conn.begin():
                for statement, params in statements:
                    conn.execute(statement, params)
        except BaseException:
            self._disconnect()
            raise

    def _commit(self, rows: list[GroupRow]) -> list[int]:
        # The group's statements go to the DBAPI cursor of the SQLAlchemy connection (its
        # `driver_connection`: the pool's, set up by the engine's connect hook). Through
        # SQLAlchemy's execute, they cost about 100 us of Python per commit, held under the GIL
        # on this thread: a quarter of a lone caller's append, and time the event loop could not
        # run. The SQL is SQLAlchemy's, compiled once, and a driver error is wrapped into
        # SQLAlchemy's exception for it (`_wrapped`), so the store tells a full disk from a
        # refused row exactly as before.
        #
        # Each statement gives up the GIL while SQLite works and must take it back after, and
        # while the event loop is busy that wait was 0.4-0.7 ms per statement (measured under
        # the HTTP load): BEGIN, the read of the log's end, the INSERT and the COMMIT cost more
        # in waits than in work. So when this thread knows where the log ends (it committed the
        # last group), the group is one autocommit INSERT that takes the write lock at its start
        # (as BEGIN IMMEDIATE does), inserts only if the log still ends there, and commits with
        # the same fsync. Anything else (the first group, a log that another writer moved, a
        # group too big for one statement) takes the explicit transaction, which reads the end.
        cursor = self._cursor()
        statement = "BEGIN IMMEDIATE"
        params: list[Any] | None = None
        try:
            if self._log_end is not None and len(rows) <= _SQLITE_GUARDED_MAX_ROWS:
                positions = list(range(self._log_end + 1, self._log_end + 1 + len(rows)))
                slots = 1 << (len(rows) - 1).bit_length()
                statement = _SQLITE_GUARDED_SQL[slots]
                params = self._row_values(rows, positions)
                params.extend([None] * ((slots - len(rows)) * _COLUMN_COUNT))
                params.append(self._log_end)
                if cursor.execute(statement, params).rowcount == len(rows):
                    self._log_end = positions[-1]
                    return positions
                statement, params = "BEGIN IMMEDIATE", None  # the log moved: read its end
            cursor.execute(statement)
            statement = _SQLITE_LAST_POSITION_SQL
            last = cursor.execute(statement).fetchone()[0] or 0
            positions = list(range(last + 1, last + 1 + len(rows)))
            values = self._row_values(rows, positions)
            params = [values[i : i + _COLUMN_COUNT] for i in range(0, len(values), _COLUMN_COUNT)]
            statement = _SQLITE_INSERT_SQL
            if len(params) == 1:  # a lone caller: a plain execute, executemany costs more for one
                cursor.execute(statement, params[0])
            else:
                cursor.executemany(statement, params)
            statement, params = "COMMIT", None
            cursor.execute(statement)
        except BaseException as exc:
            # Whatever state a failed commit left the connection in (a full disk can fail the
            # rollback too), the next group starts on a fresh one, and reads the log's end.
            self._disconnect()
            if isinstance(exc, self._driver_error):
                raise self._wrapped(statement, params, exc) from exc
            raise
        self._log_end = positions[-1]
        return positions

    def _row_values(self, rows: list[GroupRow], positions: list[int]) -> list[Any]:
        """The rows' values in the table's column order, one flat list."""
        times: dict[datetime, Any] = {}  # a group's rows share one time: spell it once
        spell = self._time_text
        if spell is None:
            raise RuntimeError("the SQLite writer is not open")
        values: list[Any] = []
        for r, p in zip(rows, positions, strict=False):
            values += (
                p,
                r["stream_id"],
                r["version"],
                r["event_id"],
                r["type"],
                r["data_json"],
                r["metadata_json"],
                times.get(r["recorded_at"]) or times.setdefault(r["recorded_at"], spell(r["recorded_at"])),
                r["prev_hash"],
                r["hash"],
                r.get("node_id"),
            )
        return values

    def _cursor(self) -> sqlite3.Cursor:
        if self._driver_cursor is None:
            self._driver_cursor = driver_cursor(self._connection())
        return self._driver_cursor

    def _wrapped(self, statement: str, params: list[Any] | None, exc: Exception) -> Exception:
        return DBAPIError.instance(
            statement,
            params,
            exc,
            self._driver_error,
            hide_parameters=True,
            dialect=self._engine.dialect if self._engine is not None else None,
            ismulti=params is not None and bool(params) and isinstance(params[0], list),
        )

    def _disconnect(self) -> None:
        conn, self._conn, self._driver_cursor, self._log_end = self._conn, None, None, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass
