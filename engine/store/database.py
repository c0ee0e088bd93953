"""Open the event database (SQLite by default, PostgreSQL for fleets) and bring its schema up.

How each database is set up (SQLite's pragmas and BEGIN IMMEDIATE, PostgreSQL's pool) is its
backend's (engine.store.backends), chosen from the URL; this module holds what is the same on
both: the migrations.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.store.backends import WRITE_TRANSACTION, backend_for, backend_of

if TYPE_CHECKING:  # alembic is imported only when a migration runs (see `upgrade`)
    from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "WRITE_TRANSACTION", "create_engine", "declared_head", "sqlite_url", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def sqlite_url(root_directory: Path) -> str:
    """The default database: wingman.db in the daemon's root folder."""
    return f"sqlite+aiosqlite:///{Path(root_directory).resolve() / 'wingman.db'}"


def create_engine(url: str) -> AsyncEngine:
    """The async engine on `url`, set up by its backend; a URL of another database is a ValueError."""
    return backend_for(url).create_engine(url)


def _alembic_config(connection: Connection | None = None) -> Config:
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
        if (take_turns := backend_of(engine).migrations_take_turns()) is not None:
            await conn.exec_driver_sql(take_turns)
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
