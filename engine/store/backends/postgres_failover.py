"""What the PostgreSQL writer does when the server goes away under a group: a primary that dies,
a failover to its standby (docs/postgres.md).

- A group whose connection was lost, ended or refused for a reason the next connection will not
  meet is said unavailable (SQLAlchemy's DisconnectionError: the store answers 503 and retries
  what follows an accepted request), never a refusal of its rows (a 500, never retried). The
  driver reports most of these as a plain DBAPIError; their SQLSTATEs tell them apart (`_LOST`).
- A group whose connection broke while its commit may have been on the way (the server ended
  mid-statement: `_IN_DOUBT`) may have committed: a primary that dies while its backend waits for
  the synchronous standby's confirmation has the commit on the standby, which is then promoted.
  Told "unavailable", its callers would be wrong, and the store's view of those streams would be
  behind the database (their next write refused by the version key, a retried outcome written
  twice). So the writer asks the database, on a new connection (the multi-host URL reaches the
  promoted standby), whether the group's events are there: if they are, the group committed, and
  its positions are returned as from any commit. It asks for `IN_DOUBT_SECONDS` at most (the
  writer waits meanwhile, and so does every group behind it: nothing could commit anyway); a
  database still unreachable then leaves the group unavailable, the doubt logged.
- A multi-host URL's hosts are tried one after the other, each with the URL's `timeout`
  (`per_host_connect`): asyncpg's own spends one timeout on all the hosts together, so a first
  host that drops packets (a machine that is off) would use it all and the next never be tried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

import asyncpg
import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.store.schema import events as E

log = structlog.get_logger("wingman.store")

IN_DOUBT_SECONDS = 5.0

# The server cannot take writes now, another connection soon will: a connection lost or refused
# (class 08: asyncpg's "connection was closed in the middle of operation" is 08003), a server
# shutting down or starting (57P01 to 57P03), a server that is read-only (25006: a standby, or a
# primary demoted under the daemon).
_LOST = ("08", "57P01", "57P02", "57P03", "25006")
# ... and of those, the ones where the commit may have reached the server before the connection
# broke (a refused connection, a server not yet started or a read-only one committed nothing).
_IN_DOUBT = ("08000", "08003", "08006", "57P01", "57P02")


class _Writer(Protocol):
    engine: AsyncEngine


W = TypeVar("W", bound=_Writer)
Insert = Callable[[W, list[dict[str, Any]]], Awaitable[list[int]]]


def unavailable_when_lost(insert: Insert[W]) -> Insert[W]:
    """The writer's `insert`, with what a lost server means said as above."""

    async def guarded(self: W, rows: list[dict[str, Any]]) -> list[int]:
        try:
            return await insert(self, rows)
        except DBAPIError as exc:
            state = str(getattr(exc.orig, "sqlstate", None) or "")
            closed = isinstance(exc, InterfaceError)  # the driver's "connection is closed"
            if not (closed or state.startswith(_LOST)):
                raise
            if closed or state in _IN_DOUBT:
                positions = await committed_positions(self.engine, rows)
                if positions is not None:
                    log.warning(
                        "a group's connection broke during its commit, which had landed: acknowledged",
                        events=len(rows),
                        positions=[positions[0], positions[-1]],
                        reason=str(exc.orig),
                    )
                    return positions
            raise DisconnectionError(f"{exc.orig} (SQLSTATE {state or 'none'})") from exc

    return guarded


async def committed_positions(engine: AsyncEngine, rows: list[dict[str, Any]]) -> list[int] | None:
    """The positions of the rows if they are in the log (the group committed), None when they are
    not or the database cannot be asked within IN_DOUBT_SECONDS."""
    ids = [r["event_id"] for r in rows]
    query = select(E.c.event_id, E.c.position).where(E.c.event_id.in_(ids))
    deadline = time.monotonic() + IN_DOUBT_SECONDS
    while True:
        try:
            async with engine.connect() as conn:
                found: dict[str, int] = {e: p for e, p in (await conn.execute(query)).all()}
            break
        except (DBAPIError, OSError, TimeoutError) as exc:
            if time.monotonic() >= deadline:
                log.error(
                    "a group's commit is in doubt: the database could not be asked whether it landed",
                    events=len(rows),
                    first_event=ids[0],
                    reason=str(getattr(exc, "orig", None) or exc),
                )
                return None
            await asyncio.sleep(0.1)
    if len(found) != len(ids):  # none of them: the group did not commit (one transaction: never a part)
        return None
    return [found[i] for i in ids]


_UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def per_host_connect(url: str) -> Callable[[], Awaitable[asyncpg.Connection]] | None:
    """For a URL with several hosts, what connects to the first of them that takes the connection
    (and matches `target_session_attrs`), each tried for the URL's `timeout` (asyncpg's default,
    60 s, when it has none); None for a URL with one host."""
    dialect: Any = cast(Any, PGDialect_asyncpg)()  # SQLAlchemy's reading of the URL, as its engine's
    _, params = dialect.create_connect_args(make_url(url))
    hosts, ports = params.get("host"), params.get("port")
    if not isinstance(hosts, list) or not isinstance(ports, list):
        return None
    for key in ("timeout", "command_timeout"):  # the URL's query is text
        if key in params:
            params[key] = float(params[key])
    params.pop("prepared_statement_cache_size", None)  # SQLAlchemy's own, not asyncpg's

    async def connect() -> asyncpg.Connection:
        last: BaseException | None = None
        for host, port in zip(hosts, ports, strict=True):
            try:
                return await asyncpg.connect(**{**params, "host": host, "port": port})
            except _UNREACHABLE as exc:
                last = exc
        # Said as the network's error, whatever the last host's was (a standby not yet promoted
        # says "read-only", which the driver reports as an internal error): none takes writes now.
        raise ConnectionError(f"no host of the database URL takes writes now (the last: {last})") from last

    return connect
