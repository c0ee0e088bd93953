"""The append-only event store.

Appends go through one writer task that commits whatever is waiting as one transaction (group
commit): a caller resumes only once its own events are durable, and when a group fails every
caller in it gets the reason. Per-stream versions are checked against the caller's expectation
before anything is written, so a conflict fails only that caller.

How a group reaches the database is the backend's (engine.store.backends: SQLite's writer
thread, PostgreSQL's one INSERT a group); positions are handed out by that writer inside the
group's transaction, gapless and in commit order (a BIGSERIAL is drawn before commit, and a reader
tailing "after N" could miss a row).

Subscribers are called with each committed group before its appenders resume. They are isolated:
one that raises is logged with its traceback and the writer goes on, so no subscriber can leave a
caller unanswered or stop the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.events import NewEvent, RecordedEvent
from wingman.engine.store.backends import AsyncWriter, GroupRow, Statements, backend_of
from wingman.engine.store.hashing import GENESIS, canonical_time
from wingman.engine.store.ownership import OwnedElsewhere
from wingman.engine.store.schema import EVENT_COLUMNS
from wingman.engine.store.schema import events as events_table
from wingman.engine.store.written_rows import append_rows, recorded

log = structlog.get_logger("wingman.store")

ANY_VERSION = -1  # expected_version that accepts whatever the stream is at
NO_STREAM = 0  # expected_version of a stream that must not exist yet


class ConcurrencyError(Exception):
    def __init__(self, stream_id: str, expected: int, actual: int):
        super().__init__(f"stream {stream_id} is at version {actual}, but the append expected version {expected}")
        self.stream_id, self.expected, self.actual = stream_id, expected, actual


class StoreUnavailable(Exception):
    """The database could not commit (read-only file, disk full, database gone): worth retrying
    once the cause is fixed. Nothing else raises it."""


class StoreClosed(Exception):
    """The store is not open (the daemon is starting or shutting down)."""


class StoreRefused(Exception):
    """The database refused a group for a reason retrying will not change (a constraint, a value
    it cannot store): a bug, reported as such and never retried."""


class ServerOfAnotherNode(StoreRefused):
    """The append was to a stream (a server) that belongs to another node of a shared database
    (engine.store.ownership, docs/fleet.md): refused, never retried."""


# Errors that say the database cannot take writes now, as opposed to refusing these rows.
_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    OSError,
    TimeoutError,
)


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


@dataclass
class _Append:
    stream_id: str
    events: list[NewEvent]
    expected_version: int
    future: asyncio.Future[list[RecordedEvent]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


Listener = Callable[[list[RecordedEvent]], None]


class EventStore:
    def __init__(self, engine: AsyncEngine, max_group: int = 500, node_id: str | None = None):
        self.engine = engine
        self.max_group = max_group
        self.node_id = node_id  # recorded on every event this store writes (docs/fleet.md)
        self.backend = backend_of(engine)
        self._rows_writer = self.backend.group_writer(engine)
        self._rows_open = False
        self._direct_writer = AsyncWriter(engine)
        self._queue: asyncio.Queue[_Append | None] = asyncio.Queue()
        self._heads: dict[str, tuple[int, str]] = {}  # stream -> (version, hash), as committed
        self._writer: asyncio.Task[None] | None = None
        self._listeners: list[Listener] = []
        self.commits = 0  # transactions committed, for the benchmark and tests of grouping
        self.last_position = 0
        self.failed_commits = 0  # groups the database did not commit (the metrics' counter)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Load every stream's head (version and hash) and start the writer."""
        async with self.engine.connect() as conn:
            latest = (
                select(
                    events_table.c.stream_id,
                    func.max(events_table.c.version).label("v"),
                    func.min(events_table.c.position).label("first"),
                )
                .group_by(events_table.c.stream_id)
                .subquery()
            )
            rows = await conn.execute(
                select(events_table.c.stream_id, events_table.c.version, events_table.c.hash)
                .join(
                    latest,
                    (latest.c.stream_id == events_table.c.stream_id) & (latest.c.v == events_table.c.version),
                )
                .order_by(latest.c.first)
            )
            # In the order the streams first appear in the log (what a fold of the log meets).
            self._heads = {r.stream_id: (r.version, r.hash) for r in rows}
            self.last_position = (await conn.execute(select(func.max(events_table.c.position)))).scalar() or 0
        await self._rows_writer.open()
        self._rows_open = True
        self._writer = asyncio.create_task(self._write_loop(), name="event-store-writer")

    async def close(self) -> None:
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
            self._writer = None
            self._rows_open = False
            await self._rows_writer.close()

    async def write_beside(self, statements: Statements) -> None:
        """Commit statements on the tables beside the log (checkpoints) in a transaction of their
        own: through the log's writer while it is open (see GroupWriter.write_beside), straight
        through the engine before it opens and once it has closed (nothing to contend with then:
        the daemon's last checkpoint is written after the log's writer has drained)."""
        writer = self._rows_writer if self._rows_open else self._direct_writer
        await writer.write_beside(statements)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with each committed group, in commit order, before the appenders resume."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- writing -----------------------------------------------------------------------------

    def version(self, stream_id: str) -> int:
        return self._heads.get(stream_id, (0, GENESIS))[0]

    def head(self, stream_id: str) -> tuple[int, str]:
        """(version, hash) of the stream's last committed event ((0, GENESIS) for none)."""
        return self._heads.get(stream_id, (0, GENESIS))

    def stream_versions(self) -> dict[str, int]:
        """Every stream in the log and its version, as committed, in the order the streams
        first appear in the log."""
        return {sid: head[0] for sid, head in self._heads.items()}

    async def append(
        self, stream_id: str, events: Iterable[NewEvent], expected_version: int = ANY_VERSION
    ) -> list[RecordedEvent]:
        batch = list(events)
        if not batch:
            return []
        if self._writer is None or self._writer.done():
            raise StoreClosed("the event store is not open")
        request = _Append(stream_id, batch, expected_version)
        self._queue.put_nowait(request)  # unbounded: never full, and no coroutine to await
        return await request.future

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self.max_group and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            try:
                await self._commit_group(group)
            except Exception as exc:  # a bug in the writer itself: fail this group, keep writing
                log.exception("the event store could not write a group")
                for req in group:
                    if not req.future.done():
                        req.future.set_exception(StoreRefused(f"the event store could not write: {exc}"))
            if stop:
                return

    async def _commit_group(self, group: list[_Append]) -> None:
        heads: dict[str, tuple[int, str]] = {}  # this group's tentative heads; kept only on success
        rows: list[GroupRow] = []
        accepted: list[tuple[_Append, int, int]] = []  # request, first row index, row count
        now = datetime.now(UTC)
        now_text = canonical_time(now)
        for req in group:
            version, prev = heads.get(req.stream_id) or self._heads.get(req.stream_id, (0, GENESIS))
            if req.expected_version != ANY_VERSION and req.expected_version != version:
                req.future.set_exception(ConcurrencyError(req.stream_id, req.expected_version, version))
                continue
            try:
                mine = append_rows(req.stream_id, req.events, version, prev, now, now_text, self.node_id)
            except (TypeError, ValueError) as exc:  # not storable (a bug upstream): this caller alone fails
                log.error("an append could not be encoded", stream=req.stream_id, error=str(exc))
                req.future.set_exception(StoreRefused(f"the events cannot be stored: {exc}"))
                continue
            heads[req.stream_id] = (mine[-1]["version"], mine[-1]["hash"])
            accepted.append((req, len(rows), len(mine)))
            rows.extend(mine)
        if not rows:
            return
        try:
            positions = await self._rows_writer.insert(rows)
        except OwnedElsewhere as exc:  # those streams' callers are refused; the others commit without them
            refused = [req for req, _, _ in accepted if req.stream_id in exc.owners]
            for req in refused:
                req.future.set_exception(ServerOfAnotherNode(str(exc)))
            rest = [req for req, _, _ in accepted if not req.future.done()]
            if refused and rest:
                await self._commit_group(rest)
            elif rest:  # not these streams (cannot happen): never retried, all told
                for req in rest:
                    req.future.set_exception(StoreRefused(str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - any failure fails the whole group, with the reason
            self.failed_commits += 1
            if _unavailable(exc):
                reason: Exception = StoreUnavailable(f"the event store could not commit: {_describe(exc)}")
            else:
                log.error("the database refused a group", error=_describe(exc), kind=type(exc).__name__)
                reason = StoreRefused(f"the database refused the events: {_describe(exc)}")
            for req, _, _ in accepted:
                if not req.future.done():
                    req.future.set_exception(reason)
            return
        self._heads.update(heads)
        self.commits += 1
        # Built without validation: each row was made from a validated NewEvent just above.
        recorded = [
            RecordedEvent.trusted(
                position=p,
                stream_id=r["stream_id"],
                version=r["version"],
                event_id=r["event_id"],
                type=r["type"],
                data=r["data"],
                metadata=r["metadata"],
                recorded_at=r["recorded_at"],
                prev_hash=r["prev_hash"],
                hash=r["hash"],
            )
            for p, r in zip(positions, rows, strict=False)
        ]
        self.last_position = max(self.last_position, positions[-1])
        self._notify(recorded)
        for req, start, count in accepted:
            if not req.future.done():
                req.future.set_result(recorded[start : start + count])

    def _notify(self, recorded: list[RecordedEvent]) -> None:
        for listener in list(self._listeners):
            try:
                listener(recorded)
            except Exception:
                log.exception(
                    "an event store subscriber failed; it is isolated and the writer goes on",
                    subscriber=getattr(listener, "__qualname__", repr(listener)),
                    positions=[recorded[0].position, recorded[-1].position],
                )

    # -- reading -----------------------------------------------------------------------------

    async def size(self) -> tuple[int, int]:
        """(events, streams) in the log."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(func.count(), func.count(events_table.c.stream_id.distinct())))).one()
            return row[0], row[1]

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        q = select(*EVENT_COLUMNS).where(events_table.c.stream_id == stream_id, events_table.c.version >= from_version)
        if to_version is not None:
            q = q.where(events_table.c.version <= to_version)
        async with self.engine.connect() as conn:
            rows = await conn.execute(q.order_by(events_table.c.version))
            return [recorded(r) for r in rows]

    async def read_all(self, after: int = 0, limit: int | None = None) -> list[RecordedEvent]:
        q = select(*EVENT_COLUMNS).where(events_table.c.position > after).order_by(events_table.c.position)
        if limit is not None:
            q = q.limit(limit)
        async with self.engine.connect() as conn:
            return [recorded(r) for r in await conn.execute(q)]

    async def iterate_all(self, after: int = 0, page: int = 2000) -> AsyncIterator[RecordedEvent]:
        """Every event after `after`, in pages, so memory stays flat over a long log."""
        while True:
            batch = await self.read_all(after=after, limit=page)
            for ev in batch:
                yield ev
            if len(batch) < page:
                return
            after = batch[-1].position

    async def events_for_operation(self, operation_id: str) -> list[RecordedEvent]:
        """Every event recorded for one operation, in log order (indexed: see migration 0003)."""
        q = select(*EVENT_COLUMNS).where(self.backend.operation_id() == operation_id).order_by(events_table.c.position)
        async with self.engine.connect() as conn:
            return [recorded(r) for r in await conn.execute(q)]


def _describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0] if str(orig or exc).strip() else type(exc).__name__
