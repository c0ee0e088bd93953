"""Open the event database (SQLite by default, PostgreSQL for fleets) and bring its schema up.

SQLite is set up the way an append-only log wants it: WAL, synchronous=FULL, and writes that take
the write lock at BEGIN (Python's sqlite3 otherwise starts transactions lazily, and a read-then-write
transaction then fails with "database is locked" whatever busy_timeout says).
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from engine.store.hashing import json_loads

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

# Execution option a writer passes to get BEGIN IMMEDIATE instead of a deferred BEGIN.
WRITE_TRANSACTION = {"sqlite_begin": "BEGIN IMMEDIATE"}


def sqlite_url(root_directory: Path) -> str:
    return f"sqlite+aiosqlite:///{Path(root_directory).resolve() / 'wingman.db'}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30}, json_deserializer=json_loads)
        _tune_sqlite(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True, json_deserializer=json_loads)


def sqlite_writer_engine(engine: AsyncEngine) -> Engine:
    """A synchronous engine on the same SQLite file, for the store's writer thread (one thread
    hand-off per group instead of aiosqlite's several per statement), set up like the async one."""
    sync = create_sync_engine(engine.url.set(drivername="sqlite"), connect_args={"timeout": 30},
                              json_deserializer=json_loads)
    _tune_sqlite(sync)
    return sync


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Autocommit at the driver level, so that we issue BEGIN ourselves (see module doc).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


def _alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), revision)


def _current(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Apply migrations on a connection of this engine, from the running loop (alembic's async
    template would call asyncio.run() and fail inside Sanic's loop)."""
    async with engine.connect() as conn:
        await conn.execution_options(**WRITE_TRANSACTION)
        await conn.run_sync(_upgrade, revision)
        await conn.commit()
        return await conn.run_sync(_current)
