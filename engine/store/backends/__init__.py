"""The databases the event store runs on, one module each, behind one protocol
(`protocol.Backend`): `sqlite` (the default; its writer and reader threads in
`sqlite_writer_thread` and `sqlite_reader_thread`) and `postgres` (for fleets), both going through
SQLAlchemy, PostgreSQL entirely through its async engine (`async_engine`).

The backend is chosen here, from the URL's database name, and nowhere else: the store's database
set-up, writer and readers ask `backend_for(url)` or `backend_of(engine)` and call it. A backend's
module is imported when first asked for (a command that only reads the config loads neither).
"""

from __future__ import annotations

from importlib import import_module

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.store.backends.async_engine import AsyncWriter
from wingman.engine.store.backends.protocol import WRITE_TRANSACTION, Backend, GroupRow, GroupWriter, Statements

__all__ = [
    "WRITE_TRANSACTION",
    "AsyncWriter",
    "Backend",
    "GroupRow",
    "GroupWriter",
    "Statements",
    "backend_for",
    "backend_of",
]

_MODULES = {"sqlite": "wingman.engine.store.backends.sqlite", "postgresql": "wingman.engine.store.backends.postgres"}
_loaded: dict[str, Backend] = {}


def _named(name: str) -> Backend:
    backend = _loaded.get(name)
    if backend is None:
        if name not in _MODULES:
            raise ValueError(
                f"the event store runs on SQLite or PostgreSQL, not {name!r} (database url "
                "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB)"
            )
        backend = _loaded[name] = import_module(_MODULES[name]).BACKEND
    return backend


def backend_for(url: str) -> Backend:
    """The backend of a database URL (`sqlite+aiosqlite:///...`, `postgresql+asyncpg://...`)."""
    return _named(make_url(url).get_backend_name())


def backend_of(engine: AsyncEngine) -> Backend:
    """The backend of an engine that `backend_for(url).create_engine(url)` made."""
    return _loaded.get(engine.dialect.name) or _named(engine.dialect.name)
