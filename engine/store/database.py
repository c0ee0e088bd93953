"""Open the event database (SQLite by default, PostgreSQL for fleets) and bring its schema up.

SQLite is set up the way an append-only log wants it: WAL, synchronous=FULL, and writes that take
the write lock at BEGIN (Python's sqlite3 otherwise starts transactions lazily, and a read-then-write
transaction then fails with "database is locked" whatever busy_timeout says).
"""
from __future__ import annotations

import re
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


def sqlite_sync_engine(engine: AsyncEngine) -> Engine:
    """A synchronous engine on the same SQLite file, set up like the async one, for the threads
    that own a connection (the store's writer, the log's page reader): one thread hand-off per
    group or page instead of aiosqlite's several per statement."""
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
    template would call asyncio.run() and fail inside Sanic's loop).

    A database already at the head revision the migration files declare is left as it is
    without loading alembic at all: that is every boot but the first after an upgrade, and
    alembic with its migration modules would stay in the daemon's memory (about 10 MB)."""
    if revision == "head":
        head = declared_head()
        if head is not None and await _recorded_revision(engine) == head:
            return head
    async with engine.connect() as conn:
        await conn.execution_options(**WRITE_TRANSACTION)
        await conn.run_sync(_upgrade, revision)
        await conn.commit()
        return await conn.run_sync(_current)


_REVISION_LINE = re.compile(r'^(down_revision|revision)\s*=\s*(?:"([^"]+)"|\'([^\']+)\'|None)\s*$', re.M)


def declared_head() -> str | None:
    """The one head revision of the migration files (None when it cannot be told for sure: then
    alembic decides)."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = {m.group(1): m.group(2) or m.group(3) for m in _REVISION_LINE.finditer(path.read_text())}
        if "revision" in found:
            if found["revision"] is None or "down_revision" not in found:
                return None
            revisions.add(found["revision"])
            if found["down_revision"]:
                parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def _recorded_revision(engine: AsyncEngine) -> str | None:
    try:
        async with engine.connect() as conn:
            rows = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
    except Exception:  # noqa: BLE001 - no table yet (a new database): alembic creates it
        return None
    return rows[0][0] if len(rows) == 1 else None
