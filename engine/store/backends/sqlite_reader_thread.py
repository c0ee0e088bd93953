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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.engine import Compiled, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

T = TypeVar("T")
_PREPARED_MAX = 64


class ThreadReader:
    """One synchronous engine on the same file and the one thread that uses it."""

    def __init__(self, engine: AsyncEngine, sync_engine: Callable[[AsyncEngine], Engine]):
        self.sync = sync_engine(engine)  # same file, same pragmas (reads never BEGIN IMMEDIATE)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-store-reader")
        self._prepared: dict[int, tuple[Executable, Compiled | None]] = {}  # by id(statement); holds it alive
        self._driver_error: type[Exception] = self.sync.dialect.loaded_dbapi.Error

    def run(self, query: Executable, params: dict | None, convert: Callable[[list], T]) -> T:
        # A connection per read: closing it ends the read transaction, so no page pins an old
        # snapshot of the WAL (a held one would also stop checkpoints from shrinking it).
        compiled = self._compiled(query) if params is not None else None
        with self.sync.connect() as conn:
            if compiled is None:
                rows = conn.execute(query, params).all()
            else:
                rows = self._driver_rows(conn, compiled, params)
        return convert(rows)

    def walk(
        self,
        loop: asyncio.AbstractEventLoop,
        query: Executable,
        params: dict,
        convert: Callable[[list], T],
        take: Callable[[T], dict | None],
    ) -> asyncio.Future:
        """Backend.walk on this thread: the whole walk, `take` included, runs here, from one
        page to the next without the loop. Each page is a task of the thread's own queue, put
        there by the page before it: a read another caller queued meanwhile runs between two
        pages, as it did when the loop asked for each page."""
        done = loop.create_future()

        def page(params: dict) -> None:
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

    def _compiled(self, query: Executable) -> Compiled | None:
        """The statement compiled once, or None when a parameter needs SQLAlchemy's processing
        on the way in (a time, JSON): those keep SQLAlchemy's execute."""
        entry = self._prepared.get(id(query))
        if entry is None or entry[0] is not query:
            if len(self._prepared) >= _PREPARED_MAX:  # statements are meant to be built once
                self._prepared.clear()
            dialect = self.sync.dialect
            compiled = query.compile(dialect=dialect)
            plain = compiled.positiontup is not None and all(  # positional (pysqlite's qmark)
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) is None
                for name in compiled.positiontup
            )
            entry = self._prepared[id(query)] = (query, compiled if plain else None)
        return entry[1]

    def _driver_rows(self, conn: Connection, compiled: Compiled, params: dict) -> list[tuple]:
        bound = compiled.construct_params(params)
        values = [bound[name] for name in compiled.positiontup]
        cursor = conn.connection.driver_connection.cursor()
        try:
            return cursor.execute(compiled.string, values).fetchall()
        except self._driver_error as exc:
            raise DBAPIError.instance(
                compiled.string, values, exc, self._driver_error, dialect=self.sync.dialect
            ) from exc
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


def _settle(done: asyncio.Future, exc: BaseException | None) -> None:
    if done.done():  # cancelled meanwhile
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
