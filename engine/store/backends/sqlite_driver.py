"""The pysqlite connection under a connection of the SQLite backend's synchronous engine
(engine.store.backends.sqlite.sync_engine), whose cursor the reader and writer threads hand their
hot statements to (see each for why)."""

from __future__ import annotations

import sqlite3

from sqlalchemy.engine import Connection


def driver_cursor(conn: Connection) -> sqlite3.Cursor:
    """A new cursor of the driver's connection under `conn`."""
    driver = conn.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):  # None once the pool has let the connection go
        raise RuntimeError(f"the SQLite backend's connection has no pysqlite connection under it: {driver!r}")
    return driver.cursor()
