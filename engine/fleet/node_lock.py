"""One daemon per node id (docs/fleet.md, "One daemon per node id").

On PostgreSQL the daemon holds a session-level advisory lock, keyed from its node id, on a
connection of its own for its whole life: the lock goes when the session goes, so a daemon that
died (even by SIGKILL, or with its host) frees its node id as soon as the server notices the
session is gone, and no row is left behind claiming otherwise. That connection is named after the
process (`application_name`: "wingman pid PID on HOST"), so a second daemon with the same node id
reads from pg_locks and pg_stat_activity which process holds it, and says so. When that session
ends under a running daemon (the database restarted, a standby promoted), the daemon takes its
node id again as soon as the database answers; if another daemon took it meanwhile, it says so.
While it does not hold its node id, the daemon refuses power requests (`refuse_power_without`:
a 503 that says why), since another daemon may be running them for the same node; it accepts them
again as soon as it holds the lock.

SQLite is one node's own file, and there is no lock: nothing stopped two daemons on one SQLite
file before either (docs/fleet.md says so). A file lock there would also hold against a daemon
restarted in the same process after a simulated crash, which the tests of boot recovery do.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from typing import Protocol

import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wingman.engine.store.database import create_engine
from wingman.engine.store.event_store import StoreUnavailable

log = structlog.get_logger("wingman.fleet")


class NodeTaken(Exception):
    """Another running daemon holds this node id on this database."""

    def __init__(self, node_id: str, holder: str):
        self.node_id, self.holder = node_id, holder
        super().__init__(
            f"node id {node_id!r} is taken on this database: {holder} holds it. One daemon per node id: "
            "stop that one, or give this one another node_id"
        )


class NodeLockLost(StoreUnavailable):
    """A power request while this daemon does not hold its node id (a 503, as any request the
    daemon cannot make durable as its node's)."""

    def __init__(self, node_id: str, holder: str | None):
        self.node_id, self.holder = node_id, holder
        why = f"{holder} holds it now" if holder else "its database session ended and the database does not answer yet"
        super().__init__(
            f"this daemon lost its node id {node_id!r} ({why}): power requests are refused until it "
            "holds its node id again"
        )


class NodeLock(Protocol):
    @property
    def held(self) -> bool: ...

    @property
    def node_id(self) -> str: ...

    @property
    def lost_to(self) -> str | None: ...

    async def release(self) -> None: ...


def refuse_power_without(lock: NodeLock | None) -> None:
    """Raise NodeLockLost when the daemon does not hold its node id now (None: SQLite, no lock)."""
    if lock is not None and not lock.held:
        raise NodeLockLost(lock.node_id, lock.lost_to)


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
    def __init__(self, url: str, node_id: str, check_every: float = 5.0):
        self.node_id, self.key, self.check_every = node_id, lock_key(node_id), check_every
        # An engine of its own, made as the store's is (the URL's hosts, timeouts and pool checks),
        # of which this lock uses one connection for the daemon's life.
        self._engine: AsyncEngine = create_engine(url)
        self._conn: AsyncConnection | None = None
        self._keeper: asyncio.Task[None] | None = None
        self.held = False  # False from the moment its session is found gone until it is taken again
        self.lost_to: str | None = None  # who holds the node id while this daemon does not

    async def take(self) -> None:
        try:
            self._conn = await self._try()
        except BaseException:
            await self._engine.dispose()
            raise
        self.held = True
        self._keeper = asyncio.create_task(self._keep(), name="node-lock")

    async def _try(self) -> AsyncConnection:
        conn = await self._engine.connect()
        try:
            # Outside any transaction: a session lock must not be undone by a rollback.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("SELECT set_config('application_name', :name, false)"), {"name": process_name()})
            taken = (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})).scalar()
            if not taken:
                raise NodeTaken(self.node_id, await self._holder(conn))
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        return conn

    async def holder_now(self) -> NodeTaken | None:
        """NodeTaken naming whoever holds the node id now, or None when it is free (taken for a
        moment and let go)."""
        try:
            conn = await self._try()
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            await conn.close()
        except NodeTaken as taken:
            return taken
        finally:
            await self._engine.dispose()
        return None

    async def _keep(self) -> None:
        """The lock lives as long as its session: when the database restarts or fails over to a
        standby, the session ends and the lock with it. Every `check_every` s the session is asked
        if it is there; once it is not, the lock is taken again on a new one, as soon as the
        database answers and nobody else holds it."""
        told: str | None = None  # what was last logged about a lock not held, said once
        while True:
            await asyncio.sleep(self.check_every)
            if self._conn is not None:
                try:
                    await asyncio.wait_for(self._conn.execute(text("SELECT 1")), max(self.check_every, 5.0))
                    continue
                except Exception:  # noqa: BLE001 - whatever it was, the session cannot be trusted
                    self.held = False
                    log.warning("the node lock's database session is gone; taking the node id again", node=self.node_id)
                    with contextlib.suppress(Exception):
                        await self._conn.invalidate()
                    self._conn = None
            try:
                self._conn = await self._try()
            except NodeTaken as exc:
                self.lost_to = exc.holder
                if told != exc.holder:
                    told = exc.holder
                    log.error(
                        "this node id was taken by another daemon while its lock was lost; power requests are "
                        "refused until it is held again",
                        problem=str(exc),
                    )
                continue
            except Exception as exc:  # noqa: BLE001 - the database is not back yet: try again
                self.lost_to = None
                if told != "down":
                    told = "down"
                    log.warning("the node lock cannot be taken again yet", node=self.node_id, error=str(exc))
                continue
            self.held, told, self.lost_to = True, None, None
            log.info("the node lock is held again", node=self.node_id)

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
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        self.held = False
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a lost session has let go already
                await self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        await self._engine.dispose()


async def hold_node_lock(database_url: str, node_id: str, check_every: float = 5.0) -> NodeLock | None:
    """Take this node id on the database for the daemon's life, or raise NodeTaken naming the
    holder; its session is checked every `check_every` s and the lock taken again when lost. None
    on SQLite (see the module doc)."""
    if make_url(database_url).get_backend_name() != "postgresql":
        return None
    lock = PostgresNodeLock(database_url, node_id, check_every)
    await lock.take()
    return lock


def node_taken(database_url: str, node_id: str) -> NodeTaken | None:
    """A look before the daemon starts (from the command, outside any loop): NodeTaken when another
    daemon holds this node id now, so that the command can say so at once and start nothing. None
    when it is free, on SQLite, or when the database does not answer (the daemon's start says why)."""
    if make_url(database_url).get_backend_name() != "postgresql":
        return None

    try:
        return asyncio.run(PostgresNodeLock(database_url, node_id).holder_now())
    except Exception:  # noqa: BLE001 - see the doc: the daemon's own start reports it
        return None
