"""One daemon per node id (docs/fleet.md, "One daemon per node id").

On PostgreSQL the daemon holds a session-level advisory lock, keyed from its node id, on a
connection of its own for its whole life: the lock goes when the session goes, so a daemon that
died (even by SIGKILL, or with its host) frees its node id as soon as the server notices the
session is gone, and no row is left behind claiming otherwise. That connection is named after the
process (`application_name`: "wingman pid PID on HOST"), so a second daemon with the same node id
reads from pg_locks and pg_stat_activity which process holds it, and says so.

On SQLite the database is one file on one host, and the same is done with an exclusive flock(2)
on a file beside it, which names its holder inside.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool


class NodeTaken(Exception):
    """Another running daemon holds this node id on this database."""

    def __init__(self, node_id: str, holder: str):
        self.node_id, self.holder = node_id, holder
        super().__init__(
            f"node id {node_id!r} is taken on this database: {holder} holds it. One daemon per node id: "
            "stop that one, or give this one another node_id"
        )


class NodeLock(Protocol):
    async def release(self) -> None: ...


def process_name() -> str:
    """How the holder names itself: its pid and host (at most 63 bytes, PostgreSQL's limit)."""
    return f"wingman pid {os.getpid()} on {socket.gethostname()}"[:63]


def lock_key(node_id: str) -> int:
    """The node's advisory key: 64 bits of a hash of its id, as PostgreSQL's signed bigint."""
    digest = hashlib.sha256(b"wingman node id\0" + node_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# Who holds a 64-bit advisory key in this database: pg_locks splits the key into classid (high 32
# bits) and objid (low 32 bits), with objsubid 1.
_HOLDER = text(
    """
    SELECT a.application_name, a.pid, a.client_addr, a.backend_start
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid)
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """
)


class PostgresNodeLock:
    def __init__(self, url: str, node_id: str):
        self.node_id, self.key = node_id, lock_key(node_id)
        self._engine: AsyncEngine = create_async_engine(
            url, poolclass=NullPool, connect_args={"server_settings": {"application_name": process_name()}}
        )
        self._conn: AsyncConnection | None = None

    async def take(self) -> None:
        conn = await self._engine.connect()
        try:
            # Outside any transaction: a session lock must not be undone by a rollback.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            taken = (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})).scalar()
            if not taken:
                raise NodeTaken(self.node_id, await self._holder(conn))
        except BaseException:
            await conn.close()
            await self._engine.dispose()
            raise
        self._conn = conn

    async def _holder(self, conn: AsyncConnection) -> str:
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        params = {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF}
        row = (await conn.execute(_HOLDER, params)).first()
        if row is None:  # let go between our try and this read
            return "another daemon (it has just let go: try again)"
        name, pid, address, since = row
        where = f" from {address}" if address else ""
        return f"{name or 'a session'} (database session {pid}{where}, connected since {since:%Y-%m-%d %H:%M:%S %Z})"

    async def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a lost session has let go already
                await self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        await self._engine.dispose()


class FileNodeLock:
    def __init__(self, path: Path, node_id: str):
        self.path, self.node_id = path, node_id
        self._fd: int | None = None

    async def take(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another daemon"
            os.close(fd)
            raise NodeTaken(self.node_id, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{process_name()}, node id {self.node_id}\n".encode(), 0)
        self._fd = fd

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing lets go of the flock; the file stays, naming the last holder
            self._fd = None


async def hold_node_lock(database_url: str, node_id: str) -> NodeLock | None:
    """Take this node id on the database for the daemon's life, or raise NodeTaken naming the
    holder. None for a database held in memory (no other daemon can open it)."""
    url = make_url(database_url)
    lock: PostgresNodeLock | FileNodeLock
    if url.get_backend_name() == "postgresql":
        lock = PostgresNodeLock(database_url, node_id)
    elif url.database and url.database != ":memory:" and not url.database.startswith("file::memory:"):
        lock = FileNodeLock(Path(f"{url.database}.daemon-lock"), node_id)
    else:
        return None
    await lock.take()
    return lock
