"""Audit: the log read back (filtered pages), a server's state at any point, and verification.

Every route here only reads, so audit tokens may call them (`ctx_read_only=True`). Answers come
from the log itself (engine.audit), never from the live registry, except verification's last
check, which compares the live views with a fresh replay.

In a fleet's shared database (docs/fleet.md, "Auditing a fleet") a node answers for itself: its
own events and servers. Asked with `scope=fleet` it answers for every node, and with `node=ID`
for that node; each event names the node that wrote it. `GET /api/audit/fleet` sums the fleet up.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict
from sanic import Blueprint, Request
from sanic.exceptions import BadRequest, NotFound
from sanic.response import HTTPResponse, json
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.api.context import node
from wingman.api.errors import ApiError
from wingman.api.openapi.describe import EVENT_FILTERS, KEY, LIMIT, POSITION, SERVER, TIME, Answer, Param, doc
from wingman.api.openapi.schemas import EventsPage, KeyBody, RotationBody, StateAt, VerifyReport
from wingman.api.requests import query_int, query_point, query_time
from wingman.engine.audit.describe import describe
from wingman.engine.audit.fleet import fleet_summary
from wingman.engine.audit.nodes import NodeFilter, nodes_at, owner_of, shared, streams_by_node
from wingman.engine.audit.verify import verify_everything
from wingman.engine.checkpoints.checkpointer import RotationFailed
from wingman.engine.checkpoints.format import BadKey, encode_key, key_of
from wingman.engine.events import RecordedEvent
from wingman.engine.servers.fold import LogError
from wingman.engine.servers.replay import UnknownStream, state_at
from wingman.engine.servers.snapshot_cache import SnapshotCache
from wingman.engine.store.points import iso
from wingman.engine.store.queries import DEFAULT_LIMIT, MAX_LIMIT, EventFilter, page, stream_exists

bp = Blueprint("audit")

FILTERS_DOC = (
    "Query: `after` (position, default 0), `limit` (1..1000, default 100), `type` (repeatable or "
    "comma-separated; `power.*` matches a prefix), `actor`, `operation`, `since` and `until` "
    '(RFC 3339, inclusive). The answer is `{"events": [...], "next_after": position or null}`.'
)

SERVER_ORDER_DOC = (
    " in its version order: the log's order for every server the daemon wrote (`GET /api/audit/verify` checks "
    "that it still is)."
)


FLEET_DOC = (
    " In a fleet's shared database the node answers for itself (its own events; a server of another node is "
    "a 404 naming that node); `scope=fleet` answers for every node, `node` for that node. There each event names "
    "the node that wrote it (`node`, null: written before node ids)."
)
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
SCOPE = Param(
    "scope",
    {"type": "string", "enum": ["node", "fleet"]},
    "`node` (default): this node's part of a fleet's shared database; `fleet`: every node's.",
)
NODE = Param(
    "node",
    {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"},
    "Only this node's part of a fleet's shared database (a node id); implies the fleet's scope.",
)


class Scope:
    """Whose part of the database a request reads: this node's (`mine`), every node's, or one node's."""

    def __init__(self, request: Request):
        raw_scope, raw_node = request.args.get("scope"), request.args.get("node")
        if raw_scope not in (None, "node", "fleet"):
            raise BadRequest(f"`scope` must be node or fleet, not {raw_scope!r}")
        if raw_node is not None and not NODE_ID.fullmatch(raw_node):
            raise BadRequest(
                "`node` must be a node id: 1 to 128 letters, digits, '.', '_', ':' or '-', "
                "starting with a letter or digit"
            )
        self.me: str = node(request).config.node_id
        self.node: str | None = raw_node
        self.fleet = raw_scope == "fleet" or raw_node is not None

    async def events(self, engine: AsyncEngine) -> NodeFilter:
        """The filter of the events in scope: one node's; every node's; this node's own and those
        written before node ids (a node's own SQLite file: everything)."""
        if self.node is not None:
            return NodeFilter(node_id=self.node)
        if self.fleet or not await shared(engine):
            return NodeFilter()
        return NodeFilter(node_id=self.me, unnamed=True)

    async def held(self, engine: AsyncEngine) -> set[str] | None:
        """The streams this node answers for (its own and those of no node) in a fleet's database;
        None on a node's own file (all of them)."""
        if not await shared(engine):
            return None
        grouped = await streams_by_node(engine)
        return grouped.get(self.me, set()) | grouped.get(None, set())

    async def server(self, engine: AsyncEngine, stream: str) -> None:
        """404 for a server of another node, unless the request reads the fleet."""
        if not self.fleet and await shared(engine):
            owner = await owner_of(engine, stream)
            if owner is not None and owner != self.me:
                raise ApiError(
                    404,
                    f"server {stream} belongs to node {owner}, not to this node ({self.me}): "
                    "ask with scope=fleet (or node=" + owner + ")",
                )


def _engine(request: Request) -> AsyncEngine:
    return node(request).db


def _cache(request: Request) -> SnapshotCache:
    """The daemon's snapshot cache (kept current as events are committed)."""
    return node(request).snapshot_cache


async def _server(request: Request, uuid: str) -> str:
    """The stream of a server the log knows (deleted ones included); 404 otherwise."""
    try:
        stream = str(uuidlib.UUID(uuid))
    except ValueError:
        raise NotFound("unknown server") from None
    if not await stream_exists(_engine(request), stream):
        raise NotFound("unknown server")
    return stream


async def _server_in_scope(request: Request, uuid: str) -> str:
    """`_server`, and a 404 naming its node for a server of another node, unless the request reads the fleet."""
    stream = await _server(request, uuid)
    await Scope(request).server(_engine(request), stream)
    return stream


def _filter(request: Request, stream: str | None) -> EventFilter:
    types = [t.strip() for raw in request.args.getlist("type", []) for t in raw.split(",") if t.strip()]
    since, until = query_time(request, "since"), query_time(request, "until")
    if since and until and since > until:
        raise BadRequest("`since` is after `until`")
    return EventFilter(
        stream_id=stream,
        types=types,
        actor=request.args.get("actor") or None,
        operation_id=request.args.get("operation") or None,
        since=since,
        until=until,
    )


async def _filter_in_scope(request: Request, stream: str | None) -> NodeFilter:
    """`_filter`, kept to the events in the request's scope (see Scope)."""
    flt = _filter(request, stream)
    scope = await Scope(request).events(_engine(request))
    return NodeFilter(**vars(flt), node_id=scope.node_id, unnamed=scope.unnamed)


def event_body(ev: RecordedEvent) -> dict[str, Any]:
    line = describe(ev)
    return {
        "position": ev.position,
        "stream_id": ev.stream_id,
        "server": ev.stream_id,
        "version": ev.version,
        "event_id": ev.event_id,
        "type": ev.type,
        "data": ev.data,
        "metadata": ev.metadata,
        "recorded_at": iso(ev.recorded_at) if not isinstance(ev.recorded_at, str) else ev.recorded_at,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
        "what": line.what,
        "why": line.why,
    }


async def _events(request: Request, stream: str | None) -> HTTPResponse:
    flt = await _filter_in_scope(request, stream)
    after = query_int(request, "after", 0)
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    events, next_after = await page(_engine(request), flt, after, limit)
    bodies = [event_body(e) for e in events]
    if await shared(_engine(request)):  # a fleet's database: each event names its node (one node's file: no need)
        nodes = await nodes_at(_engine(request), (e.position for e in events))
        for body in bodies:
            body["node"] = nodes.get(body["position"])
    return json({"events": bodies, "next_after": next_after})


@bp.get("/api/events", ctx_read_only=True)
@doc(
    "The whole log, a page at a time, filtered",
    FILTERS_DOC + " `server` limits it to one server" + SERVER_ORDER_DOC + FLEET_DOC,
    params=[*EVENT_FILTERS, LIMIT, SERVER, SCOPE, NODE],
    errors=(400,),
    answers={200: Answer("A page of events", EventsPage)},
)
async def all_events(request: Request) -> HTTPResponse:
    server = request.args.get("server")
    return await _events(request, await _server_in_scope(request, server) if server else None)


@bp.get("/api/servers/<uuid:str>/events", ctx_read_only=True)
@doc(
    "One server's events, a page at a time, filtered",
    FILTERS_DOC + " The events come" + SERVER_ORDER_DOC + " A deleted server's events stay readable." + FLEET_DOC,
    params=[*EVENT_FILTERS, LIMIT, SCOPE, NODE],
    errors=(400,),
    answers={200: Answer("A page of events", EventsPage)},
)
async def server_events(request: Request, uuid: str) -> HTTPResponse:
    return await _events(request, await _server_in_scope(request, uuid))


@bp.get("/api/servers/<uuid:str>/state", ctx_read_only=True)
@doc(
    "The server's state rebuilt from the log at a time or position",
    "`at`: an RFC 3339 time or a log position (inclusive); absent: the end of the log. "
    "`exists` is false when the server had no event yet at that point. A deleted server answers too: "
    "its history stays in the log (`deleted` is true in the state after its deletion). `node` in the answer is "
    "the node that wrote its last event at that point. In a fleet's shared database, a server of another node is "
    "a 404 naming that node unless asked with `scope=fleet` (or `node`).",
    params=[
        Param("at", {"anyOf": [POSITION, TIME]}, "A log position (digits) or an RFC 3339 time with a zone."),
        SCOPE,
        NODE,
    ],
    errors=(400, 409),
    answers={200: Answer("The state at that point", StateAt)},
)
async def server_state(request: Request, uuid: str) -> HTTPResponse:
    stream = await _server_in_scope(request, uuid)
    point = query_point(request, "at")
    try:
        answer = await state_at(_engine(request), stream, point, _cache(request))
    except UnknownStream:
        raise NotFound("unknown server") from None
    except LogError as exc:
        raise ApiError(
            409, f"The log of this server cannot be replayed up to that point: {exc} (see GET /api/audit/verify)"
        ) from None
    body = answer.as_dict()
    position = body.get("position")
    body["node"] = (await nodes_at(_engine(request), [position])).get(position) if position else None
    return json(body)


@bp.get("/api/audit/verify", ctx_read_only=True)
@doc(
    "Verify the log: hash chains, versions, transitions, operations, live state, signed checkpoints",
    "`server` limits the checks to one server's stream (then `checkpoints` is null: checkpoints vouch for "
    "the whole log). `key` (base64 Ed25519 public key) is the key to trust; default: the daemon's own. `ok` is "
    "false when anything is wrong; `first_problem` names the first bad event (stream, version, position); "
    "`checkpoints` holds the checks against the signed checkpoints (table and checkpoint file): "
    "`first_bad_position`, `not_yet_covered`, problems. `open_operations` counts operations in flight. "
    "Each problem names the node that wrote its event (`node`). In a fleet's shared database: `scope=fleet` "
    "verifies every node's events (the live state is not compared: it is on each node), `node` that node's "
    "streams (then `checkpoints` is null too); see also GET /api/audit/fleet. By default there the node compares "
    "the live state of its own servers only, and counts another node's operations without an outcome as open.",
    params=[
        SERVER,
        Param("key", KEY, "The base64 of the 32-byte Ed25519 public key to trust (44 characters)."),
        SCOPE,
        NODE,
    ],
    errors=(400,),
    answers={200: Answer("The verification's findings", VerifyReport)},
)
async def verify_log(request: Request) -> HTTPResponse:
    server = request.args.get("server")
    stream = await _server_in_scope(request, server) if server else None
    the_node = node(request)
    key = request.args.get("key") or the_node.checkpointer.public_key
    try:
        key = encode_key(key_of(key.replace(" ", "+")))  # a '+' of base64 unescaped in a query reads as a space
    except BadKey:
        raise BadRequest("`key` must be the base64 of a 32-byte Ed25519 public key") from None
    scope = Scope(request)
    if scope.node is not None:
        streams = (await streams_by_node(_engine(request))).get(scope.node, set())
        report, cp = await verify_everything(_engine(request), stream, streams=streams, node=scope.node)
    elif scope.fleet:
        file = the_node.config.checkpoint_file_path
        report, cp = await verify_everything(_engine(request), stream, key, file if file.is_file() else None)
    else:
        report, cp = await the_node.verify(stream, key, await scope.held(_engine(request)))
    return json(
        report.as_dict()
        | {
            "ok": report.ok and (cp is None or cp.ok),
            "hash_chains_ok": report.ok,
            "checkpoints": cp.as_dict() if cp is not None else None,
        }
    )


@bp.get("/api/audit/key", ctx_read_only=True)
@doc(
    "The public key the daemon signs checkpoints with, and the latest checkpoint",
    "`public_key` is the base64 of the raw 32-byte Ed25519 key (`public_key_pem` the same as PEM): give it to "
    "`wingman audit verify --key`. `latest_checkpoint` is the last signed one, `tree_size` the events the "
    "daemon's tree holds, `not_yet_covered` those after the last checkpoint.",
    answers={200: Answer("The key and the latest checkpoint", KeyBody)},
)
async def audit_key(request: Request) -> HTTPResponse:
    cp = node(request).checkpointer
    public = cp.key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return json(
        {
            "algorithm": "Ed25519",
            "public_key": cp.public_key,
            "public_key_pem": pem,
            "node": cp.settings.node_id,
            "tree_size": cp.tree.size,
            "not_yet_covered": cp.uncovered,
            "latest_checkpoint": cp.last.as_dict() if cp.last else None,
        }
    )


@bp.post("/api/audit/key/rotate")
@doc(
    "Rotate the checkpoint signing key (node token only)",
    "A checkpoint signed with the current key announces a new one (`next_key`); every later checkpoint is "
    "signed with the new key, and verification follows the rotation. The old private key is gone afterwards. "
    "503 when the announcement cannot be stored.",
    errors=(503,),
    answers={200: Answer("The old and the new public key", RotationBody)},
)
async def rotate_key(request: Request) -> HTTPResponse:
    try:
        old, new = await node(request).checkpointer.rotate()
    except RotationFailed as exc:
        raise ApiError(503, str(exc)) from None
    return json({"old_key": old, "new_key": new})


class FleetBody(BaseModel):
    """A fleet's shared database summed up (engine.audit.fleet)."""

    model_config = ConfigDict(extra="allow")
    ok: bool | None
    verified: bool
    nodes: list[dict[str, Any]]


@bp.get("/api/audit/fleet", ctx_read_only=True)
@doc(
    "The fleet in this database: each node, its servers, its last event and the verification of its streams",
    "For each node that wrote an event or owns a server (and, as `node` null, the events from before node ids "
    "in servers no node owns): `servers` (owned or written: a server handed over is under both), `events` "
    "(those that name the node), `last_event` (`position`, `time`), and `verify`: its streams checked as "
    "GET /api/audit/verify checks them (hash chains, versions, transitions, operations; `first_problem` names "
    "the node and position), and `checkpoints`: its own log of signed checkpoints, checked against the keys "
    "they announce (`wingman audit fleet --key NODE=KEY` checks them against keys you trust). `ok` is false "
    "when any node has a problem (null with `verify=false`). `node` limits it to one node.",
    params=[
        NODE,
        Param("verify", {"type": "string", "enum": ["true", "false"]}, "Verify each node's streams (default true)."),
    ],
    errors=(400,),
    answers={200: Answer("The fleet's summary", FleetBody)},
)
async def audit_fleet(request: Request) -> HTTPResponse:
    scope = Scope(request)
    check = request.args.get("verify")
    if check not in (None, "true", "false"):
        raise BadRequest(f"`verify` must be true or false, not {check!r}")
    summary = await fleet_summary(_engine(request), check != "false", scope.node)
    return json(summary.as_dict())
