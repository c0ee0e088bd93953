"""Reads of the log in one hand-off each: on SQLite, a synchronous SQLAlchemy connection on a
thread of its own runs the query and turns the rows into what the caller wants.

Through aiosqlite every statement costs several hand-offs between the event loop and the driver's
thread, and the rows then cross back to be decoded on the loop. A replay reads a million rows a
page at a time, so here a page is one call: the reader thread runs the query and `convert`s the
rows (decodes them into events), and the loop gets the result once. The store's writer does the
same for writes (engine.store.writer.ThreadWriter), on an engine set up the same way.

Other databases (PostgreSQL) and SQLite in memory (a second engine would open a second, empty
database) read through the async engine as before, `convert` then running on the loop.
"""
from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from engine.store.database import sqlite_sync_engine

T = TypeVar("T")


class _ThreadReader:
    """One synchronous engine on the same file and the one thread that uses it."""

    def __init__(self, engine: AsyncEngine):
        self.sync = sqlite_sync_engine(engine)  # same file, same pragmas (reads never BEGIN IMMEDIATE)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-store-reader")

    def run(self, query: Executable, convert: Callable[[list], T]) -> T:
        # A connection per read: closing it ends the read transaction, so no page pins an old
        # snapshot of the WAL (a held one would also stop checkpoints from shrinking it).
        with self.sync.connect() as conn:
            rows = conn.execute(query).all()
        return convert(rows)

    def close(self) -> None:
        self.thread.shutdown(wait=True)
        self.sync.dispose()


_readers: weakref.WeakKeyDictionary[Engine, _ThreadReader] = weakref.WeakKeyDictionary()


def _uses_thread(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


def _reader(engine: AsyncEngine) -> _ThreadReader:
    key = engine.sync_engine
    reader = _readers.get(key)
    if reader is None:
        reader = _readers[key] = _ThreadReader(engine)

        # Disposing the engine (a daemon stopping, a test ending) closes its reader's file too;
        # a later read on the same engine opens a new one.
        @event.listens_for(key, "engine_disposed", once=True)
        def _close(_engine: Engine, reader: _ThreadReader = reader) -> None:
            if _readers.get(key) is reader:
                del _readers[key]
            reader.close()

    return reader


async def _read_async(engine: AsyncEngine, query: Executable, convert: Callable[[list], T]) -> T:
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return convert(rows)


def read(engine: AsyncEngine, query: Executable, convert: Callable[[list], T] = list) -> Awaitable[T]:
    """Start reading `query` now and return what will hold `convert(rows)`. (Reading the next page
    ahead while the caller folds this one was measured: no gain, the GIL is the limit.)"""
    loop = asyncio.get_running_loop()
    if _uses_thread(engine):
        reader = _reader(engine)
        return loop.run_in_executor(reader.thread, reader.run, query, convert)
    return loop.create_task(_read_async(engine, query, convert))
