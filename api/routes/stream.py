"""The log, live: `GET /api/events/stream` as Server-Sent Events.

Each event goes out as `id: <position>` and its JSON (the same document `GET /api/events` gives)
as `data:`. A client resumes with `?after=<position>` or the standard `Last-Event-ID` header (which
wins when both are given: an EventSource reconnecting keeps its URL and sends the header). First
the stored events after that position, then live ones as they commit, with no gap and no duplicate
across the switch (engine.live.follow). Heartbeat comments keep proxies from closing an idle stream.
Read-only: audit tokens may follow it.

In a fleet's shared database the stream shows this node's own events by default; `scope=fleet`
shows every node's and `node=ID` one node's, read from the log every half second (this node hears
only its own commits as they happen).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from dataclasses import fields

from sanic import Blueprint, Request, Sanic

from wingman.api.context import node
from wingman.api.openapi.describe import EVENT_FILTERS, POSITION, SERVER, Answer, Param, doc
from wingman.api.requests import query_int, whole_number
from wingman.api.routes.audit import FLEET_DOC, NODE, SCOPE, Scope, _filter, _server, event_body
from wingman.engine.audit.nodes import NodeFilter
from wingman.engine.live.follow import follow

bp = Blueprint("stream")
FLEET_POLL = 0.5  # seconds between reads of the log when following other nodes' events


# One event of the stream as a client's EventSource parser reads it (`retry` and the comments are
# not events): its `id` is the event's position, its `data` the event's JSON.
SSE_EVENT = {
    "type": "object",
    "required": ["id", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The event's log position."},
        "event": {"const": "message", "description": "The default type: every event is a `message`."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/EventBody"},
        },
        "retry": {"type": "integer", "description": "Milliseconds before a client reconnects (sent once, first)."},
    },
}


def _start(request: Request) -> int:
    after = query_int(request, "after", 0)  # checked even when the header wins: a bad one is still a 400
    # EventSource sends the header only with the id of an event it received: never empty.
    header = request.headers.get("last-event-id")
    return after if header is None else whole_number(header, "Last-Event-ID")


def _frames(events) -> str:
    return "".join(
        f"id: {ev.position}\ndata: {json.dumps(event_body(ev), ensure_ascii=False, separators=(',', ':'))}\n\n"
        for ev in events
    )


@bp.before_server_start
async def track_streams(app: Sanic) -> None:
    app.ctx.event_streams = set()


@bp.before_server_stop
async def end_streams(app: Sanic) -> None:
    # A stream never ends by itself; the server would wait its whole graceful timeout for it.
    for task in list(app.ctx.event_streams):
        task.cancel()


@bp.get("/api/events/stream", ctx_read_only=True)
@doc(
    "The log as Server-Sent Events: stored events after a position, then live ones",
    "Resume with `after` (a position) or the `Last-Event-ID` header. Filters: `server`, `type` "
    "(repeatable or comma-separated; `power.*` matches a prefix), `actor`, `operation`, `since`, `until`, "
    "as `GET /api/events`. Each event: `id: <position>` and `data: <the event's JSON>`; "
    "`: heartbeat` comments while idle. The stream does not end by itself." + FLEET_DOC,
    params=[
        *EVENT_FILTERS,
        SERVER,
        SCOPE,
        NODE,
        Param("Last-Event-ID", POSITION, "Resume after this position (wins over `after`).", where="header"),
    ],
    errors=(400,),
    stream=True,
    answers={
        200: Answer(
            "The events, stored then live (the schema is one event's)", content={"text/event-stream": SSE_EVENT}
        )
    },
)
async def event_stream(request: Request):
    server = request.args.get("server")
    stream = await _server(request, server) if server else None
    the_node = node(request)
    engine = the_node.daemon.db
    scope = Scope(request)
    if stream is not None:
        await scope.server(engine, stream)
    asked = _filter(request, stream)
    scoped = await scope.events(engine)
    flt = NodeFilter(
        **{f.name: getattr(asked, f.name) for f in fields(asked)}, node_id=scoped.node_id, unnamed=scoped.unnamed
    )
    after = _start(request)
    settings = the_node.config.event_stream
    # This node's own events come live from its commits; any other node's, from the log.
    poll = FLEET_POLL if scope.fleet else None
    response = await request.respond(
        content_type="text/event-stream; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    task = asyncio.current_task()
    request.app.ctx.event_streams.add(task)
    try:
        await response.send(f"retry: 1000\n: following the log after position {after}\n\n")
        batches_of = follow(
            the_node.daemon.feed, engine, flt, after, settings.queue_events, settings.heartbeat_seconds, poll
        )
        async with aclosing(batches_of) as batches:
            async for batch in batches:
                await response.send(_frames(batch) if batch else ": heartbeat\n\n")
    finally:
        request.app.ctx.event_streams.discard(task)
