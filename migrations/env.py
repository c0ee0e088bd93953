"""Alembic environment. The daemon hands it a live connection (config.attributes["connection"]);
`alembic` on the command line gets a plain engine from WINGMAN_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from wingman.engine.store.schema import metadata

target_metadata = metadata


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _configure_and_run(connection)
else:
    url = os.environ.get("WINGMAN_DATABASE_URL", "sqlite:///var/wingman.db")
    # The command-line path runs synchronously: strip the async driver names.
    url = url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
    with create_engine(url).connect() as conn:
        _configure_and_run(conn)
        conn.commit()
