"""Verification: can the log be trusted, and does it say only possible things?

One pass over the log in position order, or over one server's events in version order (flat
memory: per stream only its head and its open operations are kept), checks, for every event:
- format: data and metadata are JSON objects, the time reads, the data fits the event's type;
- hash: the stored hash is the hash of the event's contents and its prev_hash;
- sequence and chain: versions follow each other without gap or repeat, in the log's order (one
  server's pass: its positions rise with its versions), and prev_hash is the hash of the
  stream's previous event;
- transitions: every state change is legal per the statechart and starts from the state the
  previous one left (the daemon's own fold, engine.servers.apply, decides);
- operations: a start and an outcome follow their request, and an operation has at most one
  outcome;
and, when the daemon hands its live views in, that each equals a fresh replay of its stream, and
that every operation without an outcome is one the daemon is running (an accepted operation
dropped without an outcome is a finding; read from a file alone, such operations are counted as
open, since a daemon may still be running them or the next boot records them as interrupted).
Snapshots are not used: verification trusts nothing but the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.engine.audit.nodes import NodeFilter, name_nodes
from wingman.engine.audit.report import Finding, Report
from wingman.engine.charts.log import chart_in_force
from wingman.engine.checkpoints.verify import CheckpointReport, CheckpointVerifier
from wingman.engine.event_types import EventType
from wingman.engine.events import RecordedEvent, event_class
from wingman.engine.servers.fold import LogError, ServerView, apply, new_view
from wingman.engine.servers.operations import OUTCOME_TYPES
from wingman.engine.statechart import ChartPosition, Statechart
from wingman.engine.store.hashing import GENESIS, event_hash
from wingman.engine.store.lenient_rows import is_intact
from wingman.engine.store.points import iso
from wingman.engine.store.queries import EventFilter, high_water, iterate, page, stream_versions

MAX_FINDINGS = 100
MAX_WARNINGS = 20


@dataclass
class _Stream:
    view: ServerView
    version: int = 0
    position: int = 0
    head: str = GENESIS
    last_time: datetime | None = None
    broken: bool = False  # a finding in this stream: its replay is not compared with the live view
    requested: dict[str, int] = field(default_factory=dict)  # operation -> version of its request
    started: set[str] = field(default_factory=set)
    finished: dict[str, tuple[int, str]] = field(default_factory=dict)  # operation -> (version, type)


class _Checker:
    def __init__(self, report: Report, chart: Statechart):
        self.report, self.chart = report, chart
        self.streams: dict[str, _Stream] = {}
        self.recomputed: str | None = None

    def add(self, ev: RecordedEvent | None, check: str, message: str, stream_id: str | None = None) -> None:
        r = self.report
        r.findings_total += 1
        if ev is not None:
            self.streams[ev.stream_id].broken = True
        if len(r.findings) < MAX_FINDINGS:
            r.findings.append(
                Finding(
                    stream_id=ev.stream_id if ev else (stream_id or ""),
                    version=ev.version if ev else None,
                    position=ev.position if ev else None,
                    check=check,
                    message=message,
                    event_id=ev.event_id if ev else None,
                    type=ev.type if ev else None,
                )
            )

    def warn(self, text: str) -> None:
        if len(self.report.warnings) < MAX_WARNINGS:
            self.report.warnings.append(text)

    def check(self, ev: RecordedEvent) -> None:
        self.report.events_checked += 1
        self.recomputed = None  # the event's hash as its contents give it, when they read
        st = self.streams.get(ev.stream_id)
        if st is None:
            st = self.streams[ev.stream_id] = _Stream(view=new_view(ev.stream_id, self.chart))
        problem = is_intact(ev)
        if problem:
            self.add(ev, "format", problem)
        else:
            self._hash(ev)
        self._sequence(st, ev)
        st.version, st.position, st.head = ev.version, ev.position, ev.hash  # resynchronise: report each damage once
        if problem:
            st.view.version = ev.version
            return
        if st.last_time and ev.recorded_at < st.last_time:
            self.warn(
                f"server {ev.stream_id} v{ev.version} (position {ev.position}) is recorded at "
                f"{iso(ev.recorded_at)}, before the previous event ({iso(st.last_time)}): the clock went back"
            )
        st.last_time = ev.recorded_at
        if self._fits_type(ev):
            self._operations(st, ev)
            self._fold(st, ev)
        else:
            st.view.version = ev.version

    def _hash(self, ev: RecordedEvent) -> None:
        expected = event_hash(
            stream_id=ev.stream_id,
            version=ev.version,
            event_id=ev.event_id,
            type=ev.type,
            data=ev.data,
            metadata=ev.metadata,
            recorded_at=ev.recorded_at,
            prev_hash=ev.prev_hash,
        )
        self.recomputed = expected
        if expected != ev.hash:
            self.add(
                ev,
                "hash",
                "its stored hash does not match its contents: the event was changed after it was written (or forged)",
            )

    def _sequence(self, st: _Stream, ev: RecordedEvent) -> None:
        want = st.version + 1
        if ev.version > want:
            missing = f"version {want} is" if ev.version == want + 1 else f"versions {want} to {ev.version - 1} are"
            self.add(ev, "sequence", f"{missing} missing before it (events deleted?)")
        elif ev.version < want:
            self.add(
                ev,
                "sequence",
                f"version {ev.version} comes after version {st.version} in log order "
                "(events reordered, swapped or duplicated?)",
            )
        elif ev.position < st.position:  # only one server's pass can see this: it reads in version order
            self.add(
                ev,
                "sequence",
                f"version {ev.version} follows version {st.version} but sits before it in "
                f"the log, at position {ev.position} (events reordered or swapped?)",
            )
        elif ev.prev_hash != st.head:
            what = "the start of the chain" if st.version == 0 else f"the hash of version {st.version}"
            self.add(
                ev,
                "chain",
                f"its prev_hash is not {what}: the chain is broken here "
                "(an event before it was changed, removed or inserted)",
            )

    def _fits_type(self, ev: RecordedEvent) -> bool:
        try:
            event_class(ev.type).model_validate(ev.data)
        except KeyError:
            self.add(ev, "format", f"unknown event type {ev.type!r}")
            return False
        except ValidationError as exc:
            first = exc.errors()[0]
            self.add(
                ev,
                "format",
                f"its data does not fit a {ev.type} event: "
                f"{'.'.join(map(str, first['loc'])) or 'data'}: {first['msg']}",
            )
            return False
        return True

    def _operations(self, st: _Stream, ev: RecordedEvent) -> None:
        # The power events' data fits their type (checked before): each of them has its operation's id.
        t, op = ev.type, str(ev.data.get("operation_id") or "")
        if t == EventType.POWER_REQUESTED:
            if op in st.requested or op in st.finished:
                self.add(ev, "operation", f"operation {op} is requested a second time")
            st.requested[op] = ev.version
        elif t == EventType.POWER_STARTED:
            if op not in st.requested and op not in st.finished:
                self.add(ev, "operation", f"operation {op} starts but was never requested before")
            elif op in st.finished:
                self.add(
                    ev,
                    "operation",
                    f"operation {op} starts after its outcome ({st.finished[op][1]} at v{st.finished[op][0]})",
                )
            elif op in st.started:
                self.add(ev, "operation", f"operation {op} starts a second time")
            st.started.add(op)
        elif t in OUTCOME_TYPES:
            if op in st.finished:
                v, first = st.finished[op]
                self.add(ev, "operation", f"operation {op} has a second outcome ({t}); its first was {first} at v{v}")
            elif op not in st.requested:
                self.add(ev, "operation", f"outcome {t} for operation {op}, which was not requested before it")
            st.requested.pop(op, None)
            st.started.discard(op)
            st.finished[op] = (ev.version, t)

    def _fold(self, st: _Stream, ev: RecordedEvent) -> None:
        view = st.view
        view.version = ev.version - 1  # the sequence check has spoken; fold what the event says
        try:
            apply(view, ev, self.chart)
            view.prune()
        except LogError as exc:
            self.add(ev, "transition" if ev.type == EventType.STATE_CHANGED else "fold", exc.problem)
            to = ev.data.get("to_state")
            if to in self.chart.states:  # resynchronise to what the log claims, to find the next problem
                view.power = ChartPosition(self.chart, to)
            view.version, view.position, view.updated_at = ev.version, ev.position, ev.recorded_at


async def verify(
    engine: AsyncEngine,
    server: str | None = None,
    live: dict[str, ServerView] | None = None,
    chart: Statechart | None = None,
    page_size: int = 1000,
    in_hand: Callable[[str], bool] | None = None,
    watch: Callable[[RecordedEvent, str | None], None] | None = None,
    progress: Callable[[int], None] | None = None,
    streams: Collection[str] | None = None,
    node: str | None = None,
    held: Collection[str] | None = None,
) -> Report:
    """Check the whole log (or one server's stream, or the `streams` of one `node`: named in the
    report) up to its current end; see the module doc. `watch` sees every event read, in the
    same pass, with its hash recomputed from its contents (None when they do not read): the
    checkpoint checks ride along without hashing it again. `progress` is told how many events
    are read, once a page. Each finding names the node that wrote its event. `held`: the streams
    the daemon's word (`live`, `in_hand`) speaks for, in a fleet's database its own; another
    node's operations count as open there, and its servers' live state is on that node."""
    chart = chart or await chart_in_force(engine)  # the log's timeline of charts (engine.charts.log)
    report = Report(scope=server, high_water=await high_water(engine), node=node)
    checker = _Checker(report, chart)
    flt = NodeFilter(stream_id=server, upto_position=report.high_water, stream_ids=streams)
    count = 0
    async for ev in iterate(engine, flt, page_size=page_size):
        checker.check(ev)
        if watch is not None:
            watch(ev, checker.recomputed)
        count += 1
        if count % page_size == 0:
            if progress is not None:
                progress(count)
            await asyncio.sleep(0)  # let the daemon breathe during a long verification
    if progress is not None:
        progress(count)
    report.streams_checked = len(checker.streams)
    await _open_operations(engine, checker, in_hand, held)
    if live is not None:
        await _compare_live(engine, checker, live, server, held)
        report.live_checked = True
    await name_nodes(engine, report.findings)
    return report


async def verify_everything(
    engine: AsyncEngine,
    server: str | None = None,
    trusted_key: str | None = None,
    checkpoint_file: Path | None = None,
    **verify_options: Any,
) -> tuple[Report, CheckpointReport | None]:
    """`verify` and, for the whole log, the checks against the signed checkpoints
    (engine.checkpoints.verify) in the same pass. Returns (Report, CheckpointReport, or None for one
    server's stream or one node's streams (`streams` in `verify_options`): checkpoints vouch for the
    whole log, and part of it cannot reproduce them)."""
    if server is not None or verify_options.get("streams") is not None:
        return await verify(engine, server, **verify_options), None
    v = CheckpointVerifier(engine, trusted_key, checkpoint_file)
    await v.prepare()
    report = await verify(engine, None, watch=v.feed, **verify_options)
    return report, v.finish()


async def _open_operations(
    engine: AsyncEngine, checker: _Checker, in_hand: Callable[[str], bool] | None, held: Collection[str] | None
) -> None:
    """Operations requested with no outcome in the log. With the daemon's word (`in_hand`), one it
    is not running is a finding, unless its outcome was committed after the scan read past it.
    The daemon holds an operation from before its request is written until its outcome is
    durable, so asking after the scan cannot miss one in flight."""
    for uuid, st in checker.streams.items():
        for op, version in st.requested.items():
            if in_hand is None or in_hand(op) or (held is not None and uuid not in held):
                checker.report.open_operations += 1
                continue
            events, _ = await page(engine, EventFilter(stream_id=uuid, operation_id=op), 0, 100)
            if any(e.type in OUTCOME_TYPES for e in events):
                continue
            request = next((e for e in events if e.type == EventType.POWER_REQUESTED), None)
            what = (
                request.data.get("action") if request is not None and isinstance(request.data, dict) else None
            ) or "power"
            checker.add(
                request,
                "operation",
                f"operation {op} ({what}, requested at v{version}) has no outcome, "
                "and the daemon is not running it: it was dropped",
                stream_id=uuid,
            )
    if in_hand is None and checker.report.open_operations:
        checker.warn(
            f"{checker.report.open_operations} operation(s) have no outcome yet: in flight in a running "
            "daemon, or interrupted (the next boot records that)"
        )


async def _compare_live(
    engine: AsyncEngine,
    checker: _Checker,
    live: dict[str, ServerView],
    server: str | None,
    held: Collection[str] | None,
) -> None:
    chart = checker.chart
    names = [server] if server else sorted(set(live) | set(checker.streams))
    if held is not None:
        names = [n for n in names if n in held]
    for uuid in names:
        st = checker.streams.get(uuid)
        current = live.get(uuid)
        if st is None:
            if current is not None:
                checker.add(
                    None, "live", "the daemon holds this server live, but the log has no event of it", stream_id=uuid
                )
            continue
        if st.broken:
            continue  # its findings say more than a comparison would
        replayed = st.view  # the scan is over: the checker's own view may be folded on
        if current is None:
            if not replayed.deleted and replayed.definition is not None:  # a node's own stream is no server
                checker.add(
                    None, "live", "the log says this server exists, but the daemon does not hold it", stream_id=uuid
                )
            continue
        mine = current.frozen(chart)  # a copy taken now: the live view moves on
        for _ in range(50):  # the daemon folds a commit just after it lands: let it catch up
            if mine.version >= replayed.version:
                break
            await asyncio.sleep(0.01)
            mine = current.frozen(chart)
        if mine.version < replayed.version:
            checker.add(
                None,
                "live",
                f"the log holds v{mine.version + 1} to v{replayed.version} of this server, "
                f"which the daemon never folded (its live view is at v{mine.version}): "
                "events were written behind the daemon's back",
                stream_id=uuid,
            )
            continue
        try:  # the daemon may have folded events appended after verification began
            async for ev in stream_versions(engine, uuid, replayed.version):
                if ev.version > mine.version:
                    break
                apply(replayed, ev, chart)
        except LogError as exc:
            checker.add(exc.event, "live", exc.problem)
            continue
        a, b = mine.as_dict(), replayed.as_dict()
        diff = [k for k in a if a[k] != b[k]]
        if diff:
            detail = "; ".join(f"{k}: live {a[k]!r}, replay {b[k]!r}" for k in diff[:4])
            checker.add(
                None, "live", f"the live state differs from a fresh replay of the log: {detail}", stream_id=uuid
            )
