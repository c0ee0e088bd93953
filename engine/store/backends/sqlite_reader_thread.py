"""The SQLite backend's reader thread: a synchronous SQLAlchemy connection on a thread of its own
runs a query and turns the rows into what the caller wants, in one hand-off.

Through aiosqlite every statement costs several hand-offs between the event loop and the driver's
thread, and the rows then cross back to be decoded on the loop. A replay reads a million rows a
page at a time, so here a page is one call: the reader thread runs the query and `convert`s the
rows (decodes them into events), and the loop gets the result once; a replay hands the thread
its fold as well and gets back only the end of the stream (`ThreadReader.walk`). Asking the loop
for each page cost about a millisecond a page (the loop's thread, asleep while the page was read,
takes that long to come back to it), and the rows were read on one thread and folded on another;
a full replay folds about 45% more events a second this way. The writer thread does the same for
writes (engine.store.backends.sqlite_writer_thread), on an engine set up the same way.

A statement built once and read many times with parameters (a replay's stream pages) is compiled
by SQLAlchemy once and run on the thread's connection through its DBAPI cursor, its rows handed
to `convert` as the driver's tuples: SQLAlchemy's execute and Row objects cost about 1 us a row,
a third of what reading the row costs SQLite. Driver errors are wrapped back into SQLAlchemy's.
(Reading the next page ahead while the caller folds this one was measured: no gain, the GIL is
the limit.)
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler

from wingman.engine.store.backends.protocol import Params, Query, Rows, T
from wingman.engine.store.backends.sqlite_driver import driver_cursor

_PREPARED_MAX = 64


class _Plain(NamedTuple):
    """A statement compiled once whose parameters go to the driver as they are."""

    sql: str
    compiled: SQLCompiler
    names: Sequence[str]  # the positional parameters' names, in order


class ThreadReader:
    """One synchronous engine on the same file and the one thread that uses it."""

    def __init__(self, engine: AsyncEngine, sync_engine: Callable[[AsyncEngine], Engine]):
        self.sync = sync_engine(engine)  # same file, same pragmas (reads never BEGIN IMMEDIATE)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-store-reader")
        self._prepared: dict[int, tuple[Query, _Plain | None]] = {}  # by id(statement); holds it alive
        self._driver_error: type[Exception] = self.sync.dialect.loaded_dbapi.Error

    def run(self, query: Query, params: Params | None, convert: Callable[[Rows], T]) -> T:
        # A connection per read: closing it ends the read transaction, so no page pins an old
        # snapshot of the WAL (a held one would also stop checkpoints from shrinking it).
        rows: Rows
        with self.sync.connect() as conn:
            if params is None or (plain := self._compiled(query)) is None:
                rows = conn.execute(query, params).all()
            else:
                rows = self._driver_rows(conn, plain, params)
        return convert(rows)

    def walk(
        self,
        loop: asyncio.AbstractEventLoop,
        query: Query,
        params: Params,
        convert: Callable[[Rows], T],
        take: Callable[[T], Params | None],
    ) -> asyncio.Future[None]:
        """Backend.walk on this thread: the whole walk, `take` included, runs here, from one
        page to the next without the loop. Each page is a task of the thread's own queue, put
        there by the page before it: a read another caller queued meanwhile runs between two
        pages, as it did when the loop asked for each page."""
        done: asyncio.Future[None] = loop.create_future()

        def page(params: Params) -> None:
            if done.cancelled():  # the caller gave up: read no further
                return
            try:
                following = take(self.run(query, params, convert))
                if following is not None:
                    self.thread.submit(page, following)
                    return
            except BaseException as exc:  # noqa: BLE001 - the caller's, to raise where it awaits
                loop.call_soon_threadsafe(_settle, done, exc)
                return
            loop.call_soon_threadsafe(_settle, done, None)

        self.thread.submit(page, params)
        return done

    def _compiled(self, query: Query) -> _Plain | None:
        """The statement compiled once, or None when a parameter needs SQLAlchemy's processing
        on the way in (a time, JSON): those keep SQLAlchemy's execute."""
        entry = self._prepared.get(id(query))
        if entry is None or entry[0] is not query:
            if len(self._prepared) >= _PREPARED_MAX:  # statements are meant to be built once
                self._prepared.clear()
            dialect = self.sync.dialect
            compiled = query.compile(dialect=dialect)
            plain = None
            names = compiled.positiontup
            if names is not None and all(  # positional (pysqlite's qmark)
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) is None for name in names
            ):
                plain = _Plain(compiled.string, compiled, names)
            entry = self._prepared[id(query)] = (query, plain)
        return entry[1]

    def _driver_rows(self, conn: Connection, plain: _Plain, params: Params) -> list[Any]:
        bound = plain.compiled.construct_params(params)
        values = [bound[name] for name in plain.names]
        cursor = driver_cursor(conn)
        try:
            return cursor.execute(plain.sql, values).fetchall()
        except self._driver_error as exc:
            raise DBAPIError.instance(plain.sql, values, exc, self._driver_error, dialect=self.sync.dialect) from exc
        finally:
            cursor.close()

    def close(self) -> None:
        self.thread.shutdown(wait=True)
        self.sync.dispose()


_readers: weakref.WeakKeyDictionary[Engine, ThreadReader] = weakref.WeakKeyDictionary()


def reader_for(engine: AsyncEngine, sync_engine: Callable[[AsyncEngine], Engine]) -> ThreadReader:
    """The engine's reader thread, started on its first read."""
    key = engine.sync_engine
    reader = _readers.get(key)
    if reader is None:
        reader = _readers[key] = ThreadReader(engine, sync_engine)

        # Disposing the engine (a daemon stopping, a test ending) closes its reader's file too;
        # a later read on the same engine opens a new one.
        @event.listens_for(key, "engine_disposed", once=True)
        def _close(_engine: Engine, reader: ThreadReader = reader) -> None:
            if _readers.get(key) is reader:
                del _readers[key]
            reader.close()

    return reader


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():  # cancelled meanwhile
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
