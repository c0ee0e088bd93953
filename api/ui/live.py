"""GET /ui/events: what keeps the operator page current, as Server-Sent Events that htmx's SSE
extension swaps into the page (an EventSource sends the session cookie; a token never goes in the
URL).

From the log (followed from the moment the page connects, engine.live.follow, so nothing is
missed between the page's render and the stream's start is at most what the page already shows):
- `state-<uuid>`: a server's new state, as the badge the page shows;
- `operation`: a power event of the page's server (the page fetches its operations again).

With `?server=<uuid>`, also `console`: new console lines, escaped, to append to the console.
Console lines wait in a bounded queue: a page that cannot keep up loses lines, never slows a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid as uuidlib
from contextlib import aclosing
from html import escape

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty

from wingman.api.context import node
from wingman.api.ui import render
from wingman.api.ui.pages import signed_in
from wingman.api.ui.session import Session
from wingman.engine.event_types import EventType
from wingman.engine.events import RecordedEvent
from wingman.engine.servers.registry import UnknownServer
from wingman.engine.store.queries import EventFilter

CONSOLE_QUEUE = 500  # lines waiting for a slow page; more are dropped
EVENTS_QUEUE = 10_000  # the log follower's tail (engine.live.follow)
bp = Blueprint("ui_live", url_prefix="/ui")
HEARTBEAT = 15.0  # seconds: a comment keeps proxies from closing an idle stream


def _frame(event: str, html: str) -> str:
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {event}\n{data}\n\n"


def _frames(events: list[RecordedEvent]) -> str:
    out = []
    for ev in events:
        if ev.type == EventType.STATE_CHANGED:
            badge = render.fragment("_state.html", state=ev.data.get("to_state", ""))
            out.append(_frame(f"state-{ev.stream_id}", badge))
        elif ev.type.startswith("power."):
            out.append(_frame("operation", ""))
    return "".join(out)


@bp.get("/events")
@signed_in
async def events(request: Request, session: Session) -> HTTPResponse | None:
    the_node = node(request)
    server = request.args.get("server")
    if server is not None:
        try:
            server = str(uuidlib.UUID(server))
            the_node.server(server)
        except (ValueError, UnknownServer):
            return empty(status=404)
    # The list follows every server's state; a server's page, its state and its operations too.
    types = [EventType.STATE_CHANGED, "power.*"] if server else [EventType.STATE_CHANGED]
    flt = EventFilter(stream_id=server, types=types)
    after = the_node.last_position
    response = await request.respond(
        content_type="text/event-stream; charset=utf-8",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    outgoing: asyncio.Queue[str] = asyncio.Queue()
    console: asyncio.Queue[str] = asyncio.Queue(CONSOLE_QUEUE)

    def on_line(kind: str, text: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a slow page loses lines; the server never waits
            console.put_nowait(escape(text.replace("\r", "")))

    async def follow_log() -> None:
        async with aclosing(the_node.follow(flt, after, EVENTS_QUEUE, HEARTBEAT)) as batches:
            async for batch in batches:
                await outgoing.put(_frames(batch) if batch else ": heartbeat\n\n")

    async def relay_console() -> None:
        while True:
            lines = [await console.get()]
            while not console.empty():
                lines.append(console.get_nowait())
            # One data line per console line, and an empty one last: the page appends each with
            # its line break (SSE drops the break after the last data line).
            await outgoing.put("event: console\n" + "".join(f"data: {line}\n" for line in lines) + "data: \n\n")

    stop_console = the_node.subscribe_console(server, on_line) if server else None
    task = asyncio.current_task()
    request.app.ctx.event_streams.add(task)
    helpers = [asyncio.create_task(follow_log(), name="ui-follow")]
    if server:
        helpers.append(asyncio.create_task(relay_console(), name="ui-console"))
    try:
        await response.send("retry: 1000\n\n")
        while True:
            waiting = asyncio.create_task(outgoing.get())
            done, _ = await asyncio.wait([waiting, *helpers], return_when=asyncio.FIRST_COMPLETED)
            if waiting not in done:  # a helper ended (the log could not be read): end the stream
                waiting.cancel()
                break
            await response.send(waiting.result())
    finally:
        request.app.ctx.event_streams.discard(task)
        if stop_console is not None:
            stop_console()
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
    return None
