"""Move a node's event log from its SQLite file into PostgreSQL (`wingman db migrate-to`).

What is copied keeps its identity: every event with its position, stream, version, id, hash and
the rest of its row (its node id too), the signed checkpoints, the outbox cursors (so the Panel is
not sent its activity twice), the streams' owners where the node recorded them, and the witnesses'
cosignatures of its checkpoints. Replay
snapshots are a cache of the log and are not copied: the daemon rebuilds them.

The positions are kept as they are, so the target must be empty or hold what an earlier run of
this copy put there: a database that already holds another node's log is refused (its positions
are taken). The checkpoints are signed over the first N positions of the whole log, so a copy
that renumbered the events would make them lie.

The target's schema is the daemon's own: the store's migrations bring it to the head revision
before anything is copied, and the columns copied are the ones that schema has (read from the
database, never listed here), so a column a later migration adds travels with the rest. The
source is brought to the same revision first, as the daemon does at every start.

Interrupted and run again, it resumes; run again after it finished, it copies nothing:
- the events go in batches, one transaction each (a COPY), in position order: what a killed run
  leaves behind is whole batches, never half of one;
- before copying, what the target already holds is compared with the source, row by row and
  value by value (the JSON as its stored text), and a target whose history differs anywhere is
  refused (`HistoryDiffers`) before anything is written;
- the run goes on from the target's last position.
A target that holds more than the source (a daemon already ran on it) is accepted when what it
holds of the source matches: there is nothing left to copy.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import JSON, DateTime, inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.store.backends import backend_for
from wingman.engine.store.database import upgrade

__all__ = ["DEFAULT_BATCH", "HistoryDiffers", "MigrationError", "MigrationResult", "Progress", "migrate_to"]

DEFAULT_BATCH = 20_000
Progress = Callable[[int, int], None]  # (events the target holds of the source, events in the source)
Row = tuple[Any, ...]
_SKIPPED_TABLES = {"snapshots", "alembic_version"}


class MigrationError(Exception):
    """The migration cannot be made (a source or target of the wrong kind, a schema that differs)."""


class HistoryDiffers(MigrationError):
    """The target already holds a history that is not this log's: nothing was written."""

    def __init__(self, table: str, key: object, detail: str):
        super().__init__(f"the target's {table} differ from the source's at {key}: {detail}")
        self.table, self.key, self.detail = table, key, detail


@dataclass
class MigrationResult:
    source_events: int
    already_there: int  # events the target held (and matched) before this run
    copied: int
    checkpoints_copied: int
    target_ahead: int  # events the target holds past the source's end (a daemon ran on it)
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.copied / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Columns:
    names: list[str]
    times: list[int]  # indexes of the timestamp columns: SQLite holds them as text
    json: list[int]  # indexes of the JSON columns: compared as the text stored

    def select(self, table: str, key: str, pg: bool) -> str:
        spelled = [f'"{n}"::text' if pg and i in self.json else f'"{n}"' for i, n in enumerate(self.names)]
        return f'SELECT {", ".join(spelled)} FROM "{table}" WHERE "{key}" > $1 ORDER BY "{key}" LIMIT $2'


def _read_time(value: object) -> object:
    """SQLite's text of a timestamp (naive UTC, as the store writes it) as the aware time it is."""
    if not isinstance(value, str):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _columns(sync: Connection, table: str) -> _Columns:
    found = inspect(sync).get_columns(table)
    names = [c["name"] for c in found]
    times = [i for i, c in enumerate(found) if isinstance(c["type"], DateTime)]
    json = [i for i, c in enumerate(found) if isinstance(c["type"], JSON)]
    return _Columns(names, times, json)


class _Source:
    """The SQLite file, read in pages by key with the standard library (in a thread)."""

    def __init__(self, path: str):
        self.con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    def scalar(self, sql: str) -> Any:
        return self.con.execute(sql).fetchone()[0]

    def page(self, table: str, key: str, cols: _Columns, after: Any, limit: int) -> list[Row]:
        sql = cols.select(table, key, pg=False).replace("$1", "?").replace("$2", "?")
        rows = self.con.execute(sql, (after, limit)).fetchall()
        if not cols.times:
            return rows
        converted = []
        for row in rows:
            values = list(row)
            for i in cols.times:
                values[i] = _read_time(values[i])
            converted.append(tuple(values))
        return converted

    def close(self) -> None:
        self.con.close()


async def _upgraded(url: str) -> AsyncEngine:
    engine = backend_for(url).create_engine(url)
    try:
        await upgrade(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine


async def migrate_to(
    source_url: str, target_url: str, *, batch: int = DEFAULT_BATCH, progress: Progress | None = None
) -> MigrationResult:
    """Copy the SQLite log at `source_url` into the PostgreSQL database at `target_url` (see the
    module doc). Raises HistoryDiffers when the target holds another history, MigrationError when
    the two cannot be matched at all."""
    source_path = make_url(source_url).database
    if _backend(source_url) != "sqlite" or not source_path or source_path == ":memory:":
        raise MigrationError(f"the source must be a node's SQLite file, not {_shown(source_url)}")
    if _backend(target_url) != "postgresql":
        raise MigrationError(f"the target must be a PostgreSQL database, not {_shown(target_url)}")
    await (await _upgraded(source_url)).dispose()
    target = await _upgraded(target_url)
    source = _Source(source_path)
    try:
        async with target.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            schemas = {t: await conn.run_sync(_columns, t) for t in tables if t not in _SKIPPED_TABLES}
        for table, cols in schemas.items():
            has = await asyncio.to_thread(_source_columns, source, table)
            missing = [n for n in cols.names if n not in has]
            if missing:
                raise MigrationError(f"the source's {table} table has no column {', '.join(missing)}")
        # The driver's connection under SQLAlchemy's, used directly: COPY is asyncpg's, and each
        # batch's transaction is ours to commit (nothing runs through SQLAlchemy on it, which would
        # open a transaction of its own around everything).
        async with target.connect() as conn:
            pg = cast(asyncpg.Connection, (await conn.get_raw_connection()).driver_connection)
            started = time.perf_counter()
            result = await _Copy(source, pg, schemas["events"], batch, progress).events()
            result.checkpoints_copied = await _copy_checkpoints(source, pg, schemas["checkpoints"])
            await _copy_beside(source, pg, "outbox_cursors", "name", schemas.get("outbox_cursors"))
            await _copy_beside(source, pg, "stream_owners", "stream_id", schemas.get("stream_owners"))
            # A witness's cosignatures: without them a witness would still answer (a 409 tells the
            # node its size), but the auditor's `verify --cosignatures` would lose what it vouched for.
            cosigned = ("node_id", "witness", "size")
            await _copy_beside(source, pg, "cosignatures", "node_id", schemas.get("cosignatures"), unique=cosigned)
            result.seconds = time.perf_counter() - started
            return result
    finally:
        source.close()
        await target.dispose()


def _backend(url: str) -> str:
    try:
        return backend_for(url).name
    except ValueError as exc:
        raise MigrationError(str(exc)) from None


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _source_columns(source: _Source, table: str) -> set[str]:
    return {r[1] for r in source.con.execute(f'PRAGMA table_info("{table}")')}


class _Copy:
    def __init__(self, source: _Source, pg: asyncpg.Connection, cols: _Columns, batch: int, progress: Progress | None):
        self.source, self.pg, self.cols, self.batch, self.progress = source, pg, cols, batch, progress
        self.key = cols.names.index("position")

    def _read(self, after: int) -> Awaitable[list[Row]]:
        return asyncio.to_thread(self.source.page, "events", "position", self.cols, after, self.batch)

    async def events(self) -> MigrationResult:
        total = await asyncio.to_thread(self.source.scalar, "SELECT count(*) FROM events")
        source_end = await asyncio.to_thread(self.source.scalar, "SELECT coalesce(max(position), 0) FROM events")
        target_end = await self.pg.fetchval("SELECT coalesce(max(position), 0) FROM events")
        held = await self._check_overlap(min(target_end, source_end))
        ahead = await self.pg.fetchval("SELECT count(*) FROM events WHERE position > $1", source_end)
        if ahead and held < total:
            raise HistoryDiffers("events", f"position {target_end}", "the target goes on where the source has no event")
        result = MigrationResult(total, held, 0, 0, ahead, 0.0)
        if self.progress is not None:
            self.progress(held, total)
        after = target_end
        pending = self._read(after) if after < source_end else None
        while pending is not None:
            rows = await pending
            if not rows:
                break
            after = rows[-1][self.key]
            pending = self._read(after) if after < source_end else None  # read the next batch meanwhile
            async with self.pg.transaction():
                await self.pg.copy_records_to_table("events", records=rows, columns=self.cols.names)
            result.copied += len(rows)
            if self.progress is not None:
                self.progress(held + result.copied, total)
        if result.copied and await self.pg.fetchval("SELECT pg_get_serial_sequence('events', 'position')"):
            # The column's sequence past the copied rows, for anything that ever draws from it.
            await self.pg.execute("SELECT setval(pg_get_serial_sequence('events', 'position'), $1)", after)
        return result

    async def _check_overlap(self, end: int) -> int:
        """Compare every row the target holds up to `end` with the source's; the count compared."""
        compared, after = 0, 0
        query = self.cols.select("events", "position", pg=True)
        while after < end:
            theirs = [tuple(r) for r in await self.pg.fetch(query, after, self.batch)]
            theirs = [r for r in theirs if r[self.key] <= end]
            ours = await asyncio.to_thread(self.source.page, "events", "position", self.cols, after, len(theirs) or 1)
            _same("events", "position", self.cols.names, self.key, ours, theirs)
            if not theirs:
                break
            compared += len(theirs)
            after = theirs[-1][self.key]
        return compared


def _same(table: str, key_name: str, names: Sequence[str], key: int, ours: list[Row], theirs: list[Row]) -> None:
    for mine, held in zip(ours, theirs, strict=False):
        if mine != held:
            column = next(n for n, a, b in zip(names, mine, held, strict=True) if a != b)
            raise HistoryDiffers(
                table,
                f"{key_name} {held[key]}",
                f"{column} is {_short(held[names.index(column)])} there and {_short(mine[names.index(column)])} here",
            )
    if len(ours) != len(theirs):
        where = theirs[len(ours)][key] if len(theirs) > len(ours) else ours[len(theirs)][key]
        raise HistoryDiffers(table, f"{key_name} {where}", "a row is in one of them only")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


async def _copy_checkpoints(source: _Source, pg: asyncpg.Connection, cols: _Columns) -> int:
    """The signed checkpoints the target lacks, in one transaction, after the ones it holds were
    compared with the source's (a target signed by another key or over another log is refused)."""
    key = cols.names.index("seq")
    ours = await asyncio.to_thread(source.page, "checkpoints", "seq", cols, -1, 1 << 62)
    theirs = [tuple(r) for r in await pg.fetch(cols.select("checkpoints", "seq", pg=True), -1, 1 << 62)]
    _same("checkpoints", "seq", cols.names, key, ours[: len(theirs)], theirs[: len(ours)])
    missing = ours[len(theirs) :]
    if missing:
        async with pg.transaction():
            await pg.copy_records_to_table("checkpoints", records=missing, columns=cols.names)
    return len(missing)


async def _copy_beside(
    source: _Source,
    pg: asyncpg.Connection,
    table: str,
    key: str,
    cols: _Columns | None,
    unique: tuple[str, ...] | None = None,
) -> None:
    """The rows of a small table beside the log, read in the order of `key` and told apart by
    `unique` (default: `key`): an outbox's cursor only moved forward (the target's may be ahead: a
    daemon ran on it), a stream's owner or a cosignature kept when the target has one already."""
    if cols is None:
        return
    rows = await asyncio.to_thread(source.page, table, key, cols, "", 1 << 62)
    names = ", ".join(f'"{n}"' for n in cols.names)
    values = ", ".join(f"${i + 1}" for i in range(len(cols.names)))
    if "position" in cols.names:
        updates = ", ".join(f'"{n}" = excluded."{n}"' for n in cols.names if n != key)
        conflict = f'DO UPDATE SET {updates} WHERE excluded.position > "{table}".position'
    else:
        conflict = "DO NOTHING"
    distinct = ", ".join(f'"{n}"' for n in unique or (key,))
    await pg.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({values}) ON CONFLICT ({distinct}) {conflict}', rows)
