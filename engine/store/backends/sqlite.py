"""SQLite, the default: one file in the daemon's root folder, embedded, nothing to set up.

- connections: WAL, synchronous=FULL (a commit is on the disk before anyone is told), a 30 s
  busy timeout, foreign keys on; the driver in autocommit so that the store issues BEGIN itself,
  and BEGIN IMMEDIATE for a write transaction (`WRITE_TRANSACTION`): Python's sqlite3 starts
  transactions lazily, and a read-then-write transaction then fails with "database is locked"
  whatever busy_timeout says;
- appends: the writer thread (engine.store.backends.sqlite_writer_thread), which owns a
  synchronous connection on the same file (`sync_engine`) and holds the write lock for each
  group: positions are handed out under it;
- reads: the reader thread (engine.store.backends.sqlite_reader_thread), a page read and
  decoded in one hand-off; a database in memory reads through the async engine (a second engine
  would open a second, empty database);
- JSON: `json_extract`, guarded by `json_valid` in auditors' filters (see `json_text`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy import Column, ColumnElement, Engine, String, case, event, func, literal_column, type_coerce
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from wingman.engine.store.backends import async_engine
from wingman.engine.store.backends.protocol import Backend, Params, Query, Rows, T
from wingman.engine.store.backends.sqlite_reader_thread import reader_for
from wingman.engine.store.backends.sqlite_writer_thread import ThreadWriter
from wingman.engine.store.hashing import json_loads

_IN_MEMORY = (None, "", ":memory:")


def sync_engine(engine: AsyncEngine) -> Engine:
    """A synchronous engine on the same SQLite file, set up like the async one, for the threads
    that own a connection (the store's writer, the log's page reader): one thread hand-off per
    group or page instead of aiosqlite's several per statement."""
    sync = create_sync_engine(
        engine.url.set(drivername="sqlite"), connect_args={"timeout": 30}, json_deserializer=json_loads
    )
    _set_up(sync)
    return sync


class _DriverConnection(Protocol):
    """What the connect hook uses of a new connection: sqlite3's, or aiosqlite's adapter of it."""

    isolation_level: str | None

    def cursor(self) -> DBAPICursor: ...


def _set_up(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: _DriverConnection, _record: ConnectionPoolEntry) -> None:
        # Autocommit at the driver level, so that we issue BEGIN ourselves (see module doc).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write_transaction") else "BEGIN")


def _on_file(engine: AsyncEngine) -> bool:
    return engine.url.database not in _IN_MEMORY


class SQLiteBackend:
    name = "sqlite"
    shared = False

    def create_engine(self, url: str) -> AsyncEngine:
        engine = create_async_engine(url, connect_args={"timeout": 30}, json_deserializer=json_loads)
        _set_up(engine.sync_engine)
        return engine

    def group_writer(self, engine: AsyncEngine) -> ThreadWriter:
        return ThreadWriter(engine, sync_engine)

    def read(
        self, engine: AsyncEngine, query: Query, convert: Callable[[Rows], T], params: Params | None
    ) -> Awaitable[T]:
        if _on_file(engine):
            reader = reader_for(engine, sync_engine)
            return asyncio.get_running_loop().run_in_executor(reader.thread, reader.run, query, params, convert)
        return async_engine.read(engine, query, convert, params)

    def walk(
        self,
        engine: AsyncEngine,
        query: Query,
        params: Params,
        convert: Callable[[Rows], T],
        take: Callable[[T], Params | None],
    ) -> Awaitable[None]:
        if _on_file(engine):
            return reader_for(engine, sync_engine).walk(asyncio.get_running_loop(), query, params, convert, take)
        return async_engine.walk(engine, query, params, convert, take)

    def json_text(self, column: Column[Any], key: str) -> ColumnElement[str]:
        # json_extract fails the whole query on one malformed row; skip such rows instead.
        return case(
            (func.json_valid(type_coerce(column, String)) == 1, func.json_extract(column, f"$.{key}")), else_=None
        )

    def operation_id(self) -> ColumnElement[str]:
        return literal_column("json_extract(metadata, '$.operation_id')")

    def migrations_take_turns(self) -> None:
        return None  # a migration's transaction is a write transaction: SQLite's lock serializes them


BACKEND: Backend = SQLiteBackend()
