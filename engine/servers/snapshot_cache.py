"""Replay snapshots: a server's folded state every N events, a cache of the log and nothing more.

A snapshot is used only when
- it was made by this fold (its fingerprint covers the fold's code and the statecharts in force up
  to the snapshot's position, as the log's timeline has them: engine.charts.log; a chart adopted
  later does not change what was folded before it, a different chart before it does),
- its content is what was written (a digest of the state and the event hash is kept beside it), and
- the event it was folded up to is still in the log at the same version and position, with the
  same hash. The hash chains each event to everything before it, so this ties the snapshot to the
  whole prefix of the stream it summarises (as far as the chain is intact, which verification
  checks without any snapshot).
Anything else is ignored, deleted and rebuilt from the log. When the table does not exist (an old
database) or cannot be written (a read-only copy), replay simply folds from the start.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import structlog
from sqlalchemy import String, delete, func, insert, select, tuple_, type_coerce
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.charts.log import chart_in_force
from wingman.engine.servers import definition as definition_module
from wingman.engine.servers import definition_base
from wingman.engine.servers import fold as fold_module
from wingman.engine.servers import operations as operations_module
from wingman.engine.servers import process_configuration as process_configuration_module
from wingman.engine.servers.fold import ServerView
from wingman.engine.servers.operations import OPEN_STATUSES, Operation
from wingman.engine.statechart import ChartPosition, Statechart, load_statechart
from wingman.engine.store.backends import AsyncWriter, Statements
from wingman.engine.store.hashing import canonical_json, json_loads
from wingman.engine.store.schema import events as E
from wingman.engine.store.schema import snapshots

WriteBeside = Callable[[Statements], Awaitable[None]]

log = structlog.get_logger("wingman.audit")

SNAPSHOT_FORMAT = 2  # 2: running_since, last_uptime, crash_streak, pending_restart
DEFAULT_EVERY = 500  # events of a stream between snapshots: a replay folds fewer than this


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    h = hashlib.sha256(str(SNAPSHOT_FORMAT).encode())
    for module in (fold_module, definition_module, process_configuration_module, definition_base, operations_module):
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()


@lru_cache(maxsize=64)
def _fingerprint_of(lineage: tuple[str, ...]) -> str:
    h = hashlib.sha256(_code_fingerprint().encode())
    for digest in lineage:
        h.update(digest.encode())
    return h.hexdigest()


def fingerprint(chart: Statechart | None = None, position: int = 0) -> str:
    """Changes whenever the fold up to `position` could give another answer: its code, the config
    parser, the charts in force up to there (`chart`'s timeline; the packaged chart by default)."""
    return _fingerprint_of((chart or load_statechart()).lineage_at(position))


# -- the view as JSON ------------------------------------------------------------------------------


def _t(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def view_to_json(view: ServerView) -> dict[str, Any]:
    """The view with its open operations (finished ones are in the log, not in a snapshot)."""
    return {
        "uuid": view.uuid,
        "state": view.state,
        "version": view.version,
        "position": view.position,
        "definition": view.definition,
        "suspended": view.suspended,
        "deleted": view.deleted,
        "operation_in_flight": view.operation_in_flight,
        "last_transition": view.last_transition,
        "last_process": view.last_process,
        "last_exit": view.last_exit,
        "updated_at": _t(view.updated_at),
        "running_since": _t(view.running_since),
        "last_uptime": view.last_uptime,
        "crash_streak": [_t(t) for t in view.crash_streak],
        "pending_restart": view.pending_restart,
        "operations": [
            {
                **{
                    k: getattr(op, k)
                    for k in ("id", "server", "action", "wait_seconds", "status", "reason", "actor", "channel")
                },
                "requested_at": _t(op.requested_at),
                "finished_at": _t(op.finished_at),
            }
            for op in view.operations.values()
            if op.status in OPEN_STATUSES
        ],
    }


def view_from_json(doc: dict[str, Any], chart: Statechart | None = None) -> ServerView:
    ops: dict[str, Operation] = {}
    for o in doc["operations"]:
        o = dict(o, requested_at=_dt(o["requested_at"]), finished_at=_dt(o["finished_at"]))
        ops[o["id"]] = Operation(**o)
    return ServerView(
        uuid=doc["uuid"],
        power=ChartPosition(chart or load_statechart(), doc["state"]),
        version=doc["version"],
        position=doc["position"],
        config_source=None if doc["definition"] is None else canonical_json(doc["definition"]),
        suspended=doc["suspended"],
        deleted=doc["deleted"],
        operation_in_flight=doc["operation_in_flight"],
        last_transition=doc["last_transition"],
        last_process=doc["last_process"],
        last_exit=doc["last_exit"],
        updated_at=_dt(doc["updated_at"]),
        operations=ops,
        running_since=_dt(doc["running_since"]),
        last_uptime=doc["last_uptime"],
        crash_streak=[datetime.fromisoformat(t) for t in doc["crash_streak"]],  # each written by _t from a time
        pending_restart=doc["pending_restart"],
    )


def state_digest(doc: dict[str, Any], event_hash: str) -> str:
    canonical = canonical_json(doc)
    return hashlib.sha256((event_hash + canonical).encode("utf-8")).hexdigest()


# -- the cache -------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    view: ServerView
    version: int
    position: int
    recorded_at: datetime | None  # the view's updated_at (None only before a first event, which no snapshot is)


class SnapshotCache:
    """Find the best usable snapshot before a point; save new ones. Never raises for the cache's
    own sake: a broken or missing cache only costs speed."""

    def __init__(
        self,
        engine: AsyncEngine,
        every: int = DEFAULT_EVERY,
        write: bool = True,
        write_beside: WriteBeside | None = None,
        chart: Statechart | None = None,
    ):
        """`write_beside`: how snapshots are committed; the daemon passes its store's (through the
        log's own writer, so the two never contend for SQLite's write lock), tools on a file
        alone write straight through the engine. `chart`: the chart in force with its timeline
        (the daemon's adopted one); by default read from the log at first use."""
        self.engine = engine
        self.chart = chart
        self.every = every
        self.write = write
        self._commit = write_beside or AsyncWriter(engine).write_beside
        self._available: bool | None = None

    async def available(self) -> bool:
        if self._available is None:
            try:
                async with self.engine.connect() as conn:
                    self._available = await conn.run_sync(lambda c: sa_inspect(c).has_table("snapshots"))
            except Exception:  # noqa: BLE001 - no cache is a slower answer, not a wrong one
                self._available = False
        return self._available

    async def timeline(self) -> Statechart:
        """The chart in force with its timeline: the one given, else the log's (read once)."""
        if self.chart is None:
            self.chart = await chart_in_force(self.engine)
        return self.chart

    async def best(self, stream_id: str, position: int | None = None, time: datetime | None = None) -> Snapshot | None:
        """The latest usable snapshot at or before the point (position or time; neither: the end)."""
        if not await self.available():
            return None
        chart = await self.timeline()
        s = snapshots.c
        q = (
            select(
                s.version,
                s.position,
                s.recorded_at,
                s.event_hash,
                s.fingerprint,
                type_coerce(s.state, String).label("state"),
                s.state_hash,
                E.c.hash,
                E.c.position.label("event_position"),
            )
            .outerjoin(E, (E.c.stream_id == s.stream_id) & (E.c.version == s.version))
            .where(s.stream_id == stream_id)
            .order_by(s.version.desc())
            .limit(8)
        )
        if position is not None:
            q = q.where(s.position <= position)
        if time is not None:
            q = q.where(s.recorded_at <= time)
        stale: list[int] = []
        found = None
        try:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(q)).all()
            for r in rows:
                usable = (
                    r.fingerprint == fingerprint(chart, r.position)
                    and r.hash == r.event_hash
                    and r.event_position == r.position
                )
                view = _load(r.state, r.event_hash, r.state_hash, chart) if usable else None
                if view is None or view.version != r.version:
                    stale.append(r.version)
                    continue
                found = Snapshot(view, r.version, r.position, view.updated_at)
                break
        except Exception as exc:  # noqa: BLE001
            log.warning("replay snapshots unreadable; folding from the log", error=str(exc))
            return None
        if stale:
            await self._delete(stream_id, stale)
        return found

    async def heads(self, chart: Statechart | None = None) -> dict[str, Snapshot]:
        """Every stream's latest snapshot, in one read, each checked as `best` checks it; a
        stream whose latest snapshot does not check out is left out (the caller folds it)."""
        if not await self.available():
            return {}
        chart = chart or await self.timeline()
        s = snapshots.c
        latest = select(s.stream_id, func.max(s.version).label("v")).group_by(s.stream_id).subquery()
        q = (
            select(
                s.stream_id,
                s.version,
                s.position,
                s.fingerprint,
                type_coerce(s.state, String).label("state"),
                s.state_hash,
                s.event_hash,
                E.c.hash,
                E.c.position.label("event_position"),
            )
            .join(latest, (latest.c.stream_id == s.stream_id) & (latest.c.v == s.version))
            .outerjoin(E, (E.c.stream_id == s.stream_id) & (E.c.version == s.version))
        )
        try:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(q)).all()
        except Exception as exc:  # noqa: BLE001
            log.warning("replay snapshots unreadable; folding from the log", error=str(exc))
            return {}
        found: dict[str, Snapshot] = {}
        for r in rows:
            if (
                r.fingerprint != fingerprint(chart, r.position)
                or r.hash != r.event_hash
                or r.event_position != r.position
            ):
                continue
            view = _load(r.state, r.event_hash, r.state_hash, chart)
            # A state the chart in force lacks (a server left there by an accepted change, re-placed
            # by an event after the snapshot): the caller folds the stream instead.
            if view is not None and view.version == r.version and view.state in chart.states:
                found[r.stream_id] = Snapshot(view, r.version, r.position, view.updated_at)
        return found

    def due(self, version: int) -> bool:
        return self.every > 0 and version % self.every == 0

    def row(self, view: ServerView, event_hash: str) -> dict[str, Any]:
        """A snapshot of the view as it is now (serialised at once: later folding mutates views)."""
        doc = view_to_json(view)
        return dict(
            stream_id=view.uuid,
            version=view.version,
            position=view.position,
            recorded_at=view.updated_at,
            event_hash=event_hash,
            fingerprint=fingerprint(self.chart, view.position),
            state=doc,
            state_hash=state_digest(doc, event_hash),
        )

    async def save(self, rows: list[dict[str, Any]], heads: bool = False) -> None:
        """Save snapshots. `heads`: these are streams' latest states (saved at shutdown, off the
        every-N grid), and each replaces the stream's earlier off-grid ones, so they do not pile up."""
        if not rows or not self.write or not await self.available():
            return
        keys = [(r["stream_id"], r["version"]) for r in rows]
        s = snapshots.c
        statements: Statements = []
        for i in range(0, len(keys), 200):
            chunk = keys[i : i + 200]
            statements.append((delete(snapshots).where(tuple_(s.stream_id, s.version).in_(chunk)), None))
            if heads and self.every > 0:
                statements.append(
                    (delete(snapshots).where(s.stream_id.in_([k[0] for k in chunk]), s.version % self.every != 0), None)
                )
        statements.append((insert(snapshots), rows))
        try:
            await self._commit(statements)
        except Exception as exc:  # noqa: BLE001 - e.g. a read-only copy of the database
            log.info("replay snapshots not saved", error=str(exc))
            self.write = False

    async def _delete(self, stream_id: str, versions: list[int]) -> None:
        if not self.write:
            return
        try:
            await self._commit(
                [(delete(snapshots).where(snapshots.c.stream_id == stream_id, snapshots.c.version.in_(versions)), None)]
            )
        except Exception as exc:  # noqa: BLE001
            log.info("stale replay snapshots not deleted", error=str(exc))
            self.write = False

    async def clear(self, stream_id: str | None = None) -> None:
        if not await self.available():
            return
        q = delete(snapshots)
        await self._commit([(q.where(snapshots.c.stream_id == stream_id) if stream_id else q, None)])


def _load(
    text: str | dict[str, Any], event_hash: str, digest: str, chart: Statechart | None = None
) -> ServerView | None:
    try:
        doc = json_loads(text) if isinstance(text, str) else text
        if state_digest(doc, event_hash) != digest:
            return None
        return view_from_json(doc, chart)
    except Exception:  # noqa: BLE001 - a snapshot that does not load is stale
        return None
