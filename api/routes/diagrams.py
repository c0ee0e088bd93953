"""Diagrams: the statechart the daemon enforces, and what one server really went through.

Read-only (`ctx_read_only=True`): audit tokens may fetch them. Every diagram is drawn from the
parsed statechart and the log (engine.diagrams); bad input is a JSON 400 and touches nothing.
"""

from __future__ import annotations

import uuid as uuidlib

from sanic import Blueprint, Request
from sanic.exceptions import NotFound
from sanic.response import HTTPResponse, raw

from wingman.api.context import node
from wingman.api.errors import ApiError
from wingman.api.openapi.describe import SINCE, UNTIL, Answer, Param, doc
from wingman.api.requests import query_time
from wingman.engine.diagrams.formats import (
    HISTORY_FORMATS,
    MEDIA_TYPES,
    STATECHART_FORMATS,
    SUFFIXES,
    TIMELINE_FORMATS,
    BadDiagramRequest,
    checked_format,
)
from wingman.engine.diagrams.history import history_diagram
from wingman.engine.diagrams.statechart import export
from wingman.engine.diagrams.timeline import keep_intervals, timeline_diagram
from wingman.engine.diagrams.window import Window, passage
from wingman.engine.servers.fold import LogError
from wingman.engine.servers.replay import UnknownStream

bp = Blueprint("diagrams")

WINDOW_DOC = (
    "`since` and `until`: RFC 3339 times with a zone (inclusive); absent, the window runs from "
    "the server's first event to now. A deleted server is drawn too: its history stays in the log."
)


def _format_param(formats: tuple[str, ...]) -> Param:
    return Param(
        "format", {"type": "string", "enum": list(formats)}, f"One of {', '.join(formats)} (absent or empty: mermaid)."
    )


def _media(formats: tuple[str, ...]) -> dict[str, dict]:
    """Each format's media type, with what its body is (PNG is binary, the others text)."""
    return {
        MEDIA_TYPES[f]: {"type": "string", **({"contentEncoding": "binary"} if f == "png" else {})} for f in formats
    }


def _format(request: Request, allowed: tuple[str, ...], what: str) -> str:
    try:
        return checked_format(request.args.get("format"), allowed, what)
    except BadDiagramRequest as exc:
        raise ApiError(400, str(exc)) from None


def _window(request: Request) -> Window:
    try:
        return Window(query_time(request, "since"), query_time(request, "until"))
    except BadDiagramRequest as exc:
        raise ApiError(400, str(exc)) from None


async def _server(request: Request, uuid: str) -> str:
    """The stream of a server the log knows (deleted ones included); 404 otherwise."""
    try:
        stream = str(uuidlib.UUID(uuid))
    except ValueError:
        raise NotFound("unknown server") from None
    if not await node(request).stream_exists(stream):
        raise NotFound("unknown server")
    return stream


def _diagram(body: bytes, fmt: str, name: str) -> HTTPResponse:
    return raw(
        body,
        content_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'inline; filename="{name}.{SUFFIXES[fmt]}"'},
    )


async def _passage(request: Request, uuid: str, window: Window, keep: int = 0):
    stream = await _server(request, uuid)
    try:
        return await passage(node(request).db, stream, window, keep)
    except UnknownStream:
        raise NotFound("unknown server") from None
    except LogError as exc:
        raise ApiError(409, f"The log of this server cannot be replayed: {exc} (see GET /api/audit/verify)") from None


@bp.get("/api/statechart", ctx_read_only=True)
@doc(
    "The power statechart as a diagram",
    "Every state with its description, every transition labelled with its trigger, the initial state marked; "
    "drawn from the statechart file the daemon enforces.",
    params=[_format_param(STATECHART_FORMATS)],
    errors=(400,),
    answers={200: Answer("The diagram", content=_media(STATECHART_FORMATS))},
)
async def statechart_diagram(request: Request):
    fmt = _format(request, STATECHART_FORMATS, "the statechart")
    chart = node(request).chart  # the chart in force (system.statechart), not the packaged one
    return _diagram(export(chart, fmt), fmt, chart.name)


@bp.get("/api/servers/<uuid:str>/diagram", ctx_read_only=True)
@doc(
    "What a server went through, drawn over the statechart",
    "Transitions taken in the window are drawn heavier and labelled with how many times; states never "
    "visited are faded; the state at the window's end is marked. " + WINDOW_DOC,
    params=[_format_param(HISTORY_FORMATS), SINCE, UNTIL],
    errors=(400, 409),
    answers={200: Answer("The diagram", content=_media(HISTORY_FORMATS))},
)
async def history(request: Request, uuid: str):
    fmt = _format(request, HISTORY_FORMATS, "a history diagram")
    p = await _passage(request, uuid, _window(request))
    return _diagram(history_diagram(node(request).chart, p, fmt), fmt, f"{p.server}-history")


@bp.get("/api/servers/<uuid:str>/diagram/timeline", ctx_read_only=True)
@doc(
    "A server's states over time, each change with its cause and actor",
    WINDOW_DOC + " A window with more changes than a timeline can show is a 400 that says so.",
    params=[_format_param(TIMELINE_FORMATS), SINCE, UNTIL],
    errors=(400, 409),
    answers={200: Answer("The diagram", content=_media(TIMELINE_FORMATS))},
)
async def timeline(request: Request, uuid: str):
    fmt = _format(request, TIMELINE_FORMATS, "a timeline")
    p = await _passage(request, uuid, _window(request), keep_intervals())
    try:
        body = timeline_diagram(node(request).chart, p, fmt)
    except BadDiagramRequest as exc:
        raise ApiError(400, str(exc)) from None
    return _diagram(body, fmt, f"{p.server}-timeline")
