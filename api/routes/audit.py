"""Audit: the log read back (filtered pages), a server's state at any point, and verification.

Every route here only reads, so audit tokens may call them (`ctx_read_only=True`). Answers come
from the log itself (engine.audit), never from the live registry, except verification's last
check, which compares the live views with a fresh replay.
"""

from __future__ import annotations

import uuid as uuidlib

from cryptography.hazmat.primitives import serialization
from sanic import Blueprint, Request
from sanic.exceptions import BadRequest, NotFound
from sanic.response import json
from sqlalchemy.ext.asyncio import AsyncEngine

from wingman.api.context import node
from wingman.api.errors import ApiError
from wingman.api.openapi.describe import EVENT_FILTERS, KEY, LIMIT, POSITION, SERVER, TIME, Answer, Param, doc
from wingman.api.openapi.schemas import EventsPage, KeyBody, RotationBody, StateAt, VerifyReport
from wingman.api.requests import query_int, query_point, query_time
from wingman.engine.audit.describe import describe
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


def event_body(ev: RecordedEvent) -> dict:
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


async def _events(request: Request, stream: str | None):
    flt = _filter(request, stream)
    after = query_int(request, "after", 0)
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    events, next_after = await page(_engine(request), flt, after, limit)
    return json({"events": [event_body(e) for e in events], "next_after": next_after})


@bp.get("/api/events", ctx_read_only=True)
@doc(
    "The whole log, a page at a time, filtered",
    FILTERS_DOC + " `server` limits it to one server" + SERVER_ORDER_DOC,
    params=[*EVENT_FILTERS, LIMIT, SERVER],
    errors=(400,),
    answers={200: Answer("A page of events", EventsPage)},
)
async def all_events(request: Request):
    server = request.args.get("server")
    return await _events(request, await _server(request, server) if server else None)


@bp.get("/api/servers/<uuid:str>/events", ctx_read_only=True)
@doc(
    "One server's events, a page at a time, filtered",
    FILTERS_DOC + " The events come" + SERVER_ORDER_DOC + " A deleted server's events stay readable.",
    params=[*EVENT_FILTERS, LIMIT],
    errors=(400,),
    answers={200: Answer("A page of events", EventsPage)},
)
async def server_events(request: Request, uuid: str):
    return await _events(request, await _server(request, uuid))


@bp.get("/api/servers/<uuid:str>/state", ctx_read_only=True)
@doc(
    "The server's state rebuilt from the log at a time or position",
    "`at`: an RFC 3339 time or a log position (inclusive); absent: the end of the log. "
    "`exists` is false when the server had no event yet at that point. A deleted server answers too: "
    "its history stays in the log (`deleted` is true in the state after its deletion).",
    params=[Param("at", {"anyOf": [POSITION, TIME]}, "A log position (digits) or an RFC 3339 time with a zone.")],
    errors=(400, 409),
    answers={200: Answer("The state at that point", StateAt)},
)
async def server_state(request: Request, uuid: str):
    stream = await _server(request, uuid)
    point = query_point(request, "at")
    try:
        answer = await state_at(_engine(request), stream, point, _cache(request))
    except UnknownStream:
        raise NotFound("unknown server") from None
    except LogError as exc:
        raise ApiError(
            409, f"The log of this server cannot be replayed up to that point: {exc} (see GET /api/audit/verify)"
        ) from None
    return json(answer.as_dict())


@bp.get("/api/audit/verify", ctx_read_only=True)
@doc(
    "Verify the log: hash chains, versions, transitions, operations, live state, signed checkpoints",
    "`server` limits the checks to one server's stream (then `checkpoints` is null: checkpoints vouch for "
    "the whole log). `key` (base64 Ed25519 public key) is the key to trust; default: the daemon's own. `ok` is "
    "false when anything is wrong; `first_problem` names the first bad event (stream, version, position); "
    "`checkpoints` holds the checks against the signed checkpoints (table and checkpoint file): "
    "`first_bad_position`, `not_yet_covered`, problems. `open_operations` counts operations in flight.",
    params=[SERVER, Param("key", KEY, "The base64 of the 32-byte Ed25519 public key to trust (44 characters).")],
    errors=(400,),
    answers={200: Answer("The verification's findings", VerifyReport)},
)
async def verify_log(request: Request):
    server = request.args.get("server")
    stream = await _server(request, server) if server else None
    the_node = node(request)
    key = request.args.get("key") or the_node.checkpointer.public_key
    try:
        key = encode_key(key_of(key.replace(" ", "+")))  # a '+' of base64 unescaped in a query reads as a space
    except BadKey:
        raise BadRequest("`key` must be the base64 of a 32-byte Ed25519 public key") from None
    report, cp = await the_node.verify(stream, key)
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
async def audit_key(request: Request):
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
async def rotate_key(request: Request):
    try:
        old, new = await node(request).checkpointer.rotate()
    except RotationFailed as exc:
        raise ApiError(503, str(exc)) from None
    return json({"old_key": old, "new_key": new})
