"""The database through SQLAlchemy's async engine, one round trip per statement: how PostgreSQL
reads and writes everything, and how SQLite writes beside the log while its writer thread is not
open and reads a database held in memory (a second engine would open a second, empty one)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.store.backends.protocol import WRITE_TRANSACTION, Params, Query, Rows, Statements, T


class AsyncWriter:
    """Statements beside the log, in a transaction of their own, through the async engine."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def write_beside(self, statements: Statements) -> None:
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**WRITE_TRANSACTION)
            async with conn.begin():
                for statement, params in statements:
                    await conn.execute(statement, params)


async def _read(engine: AsyncEngine, query: Query, params: Params | None, convert: Callable[[Rows], T]) -> T:
    async with engine.connect() as conn:
        rows = (await conn.execute(query, params)).all()
    return convert(rows)


def read(engine: AsyncEngine, query: Query, convert: Callable[[Rows], T], params: Params | None) -> Awaitable[T]:
    """Backend.read through the async engine: `convert` runs on the loop."""
    return asyncio.get_running_loop().create_task(_read(engine, query, params, convert))


async def _walk(
    engine: AsyncEngine, query: Query, params: Params, convert: Callable[[Rows], T], take: Callable[[T], Params | None]
) -> None:
    following: Params | None = params
    while following is not None:
        following = take(await _read(engine, query, following, convert))


def walk(
    engine: AsyncEngine, query: Query, params: Params, convert: Callable[[Rows], T], take: Callable[[T], Params | None]
) -> Awaitable[None]:
    """Backend.walk through the async engine: each page read, then taken on the loop."""
    return asyncio.get_running_loop().create_task(_walk(engine, query, params, convert, take))
