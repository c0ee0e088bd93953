"""What differs between the databases the event store runs on, as one protocol (`Backend`), and what
the store's writer is to each of them (`GroupWriter`).

One module implements the protocol per database (`sqlite`, `postgres`), and
`engine.store.backends.backend_for` picks one from the URL, in one place: nothing outside those
modules asks which database it runs on.

What every backend keeps the same (tests/store/test_store_conformance.py holds each to it, on the real
database):
- a group of appends is one transaction: all of its rows are committed, or none;
- positions are handed out by the group's writer inside its write transaction, from the log's end
  as that transaction sees it: gapless and in commit order, so a reader of "after position N"
  never skips a row committed later with a smaller number (a database sequence, PostgreSQL's
  BIGSERIAL, is drawn before commit and would let it);
- a second writer of the same log (another connection, another daemon) never interleaves with a
  group: SQLite's write lock makes it wait its turn, and on PostgreSQL the log's advisory lock,
  taken first in every group's transaction and held to its commit (docs/fleet.md);
- data and metadata are stored as the canonical JSON texts the hash was made of.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypedDict, TypeVar

from sqlalchemy import Column, ColumnElement, Executable, Select
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

# A page of rows as a read hands it to its `convert`: SQLAlchemy's Rows, or the driver's plain
# tuples (see Backend.read), each the selected columns in order.
Rows = Sequence[Sequence[Any]]
# The parameters of a statement built once and read many times (bindparam name -> value).
Params = dict[str, Any]
# A read of the log: a SELECT (the SQLite reader compiles it once and hands it to the driver).
Query = Select[*tuple[Any, ...]]

# The execution options of a write transaction: a backend whose BEGIN can take the write lock
# takes it there (SQLite: BEGIN IMMEDIATE; a deferred BEGIN makes a read-then-write transaction
# fail with "database is locked" whatever busy_timeout says). Others ignore them.
WRITE_TRANSACTION = {"write_transaction": True}

# Statements for the tables beside the log (checkpoints, snapshots): each with its parameters, or None.
Statements = list[tuple[Executable, Sequence[Mapping[str, Any]] | Mapping[str, Any] | None]]


class GroupRow(TypedDict):
    """One event of a group as the store hands it to its writer: the row without its position
    (the writer's to give), and data and metadata also as the canonical JSON texts their hash was
    made of (what is stored)."""

    stream_id: str
    version: int
    event_id: str
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime
    prev_hash: str
    hash: str
    data_json: str
    metadata_json: str
    node_id: str | None  # the node that writes it (None: a daemon outside any fleet)


class GroupWriter(Protocol):
    async def open(self) -> None: ...

    async def insert(self, rows: list[GroupRow]) -> list[int]:
        """Commit every row in one transaction; return their positions (in row order)."""

    async def write_beside(self, statements: Statements) -> None:
        """Run the statements in one transaction of their own, on the log's writer: on SQLite a
        second writing connection would contend with the log's for the write lock, and the one
        that waits sleeps in SQLite's busy handler (a millisecond or more, every time)."""

    async def close(self) -> None: ...


class Backend(Protocol):
    name: str  # SQLAlchemy's name for the database: "sqlite", "postgresql"
    shared: bool  # several nodes of a fleet may write to it (docs/fleet.md); SQLite is one node's file

    def create_engine(self, url: str) -> AsyncEngine:
        """The async engine on `url`, its connections set up for the log (pragmas, pool)."""

    def group_writer(self, engine: AsyncEngine) -> GroupWriter:
        """What commits the log's groups on this database (see GroupWriter)."""

    def read(
        self, engine: AsyncEngine, query: Query, convert: Callable[[Rows], T], params: Params | None
    ) -> Awaitable[T]:
        """Start reading `query` now; what is returned will hold `convert(rows)`. With `params`,
        the statement is one built once and read many times; its rows may then be the driver's
        plain tuples."""

    def walk(
        self,
        engine: AsyncEngine,
        query: Query,
        params: Params,
        convert: Callable[[Rows], T],
        take: Callable[[T], Params | None],
    ) -> Awaitable[None]:
        """Read `query` page after page: each page `convert`ed and handed to `take`, which
        returns the next page's parameters, or None to stop. Where `take` runs is the backend's
        choice (SQLite: its reader thread), so `take` must touch nothing the event loop changes."""

    def json_text(self, column: Column[Any], key: str) -> ColumnElement[str]:
        """A top-level key of a JSON column, as text; NULL for a row whose JSON does not parse
        (one edited row must not fail an auditor's whole query)."""

    def operation_id(self) -> ColumnElement[str]:
        """The metadata's operation id, spelled exactly as migration 0003's index is built (so
        that the index serves the query)."""

    def migrations_take_turns(self) -> str | None:
        """A statement run first in a migration's transaction, so that daemons migrating one
        database at the same moment take turns (None: the database's own write lock does)."""
