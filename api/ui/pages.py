"""The operator page, /ui (docs/ui.md): every server with its state, one server's state,
operations, timeline, console and power buttons, and the audit's verdict, checkpoint and chart.

Server-rendered (Jinja2) and enhanced with htmx: its SSE extension keeps the states, operations
and console current from /ui/events (api/ui/live.py) with no polling and no reload. Without the
JavaScript the page still works: the buttons are plain forms that post and come back.

Signed in with a session cookie (api/ui/session.py), never with a token in a URL. The node token
may press buttons; an audit token sees everything and presses nothing (no buttons are drawn, and
a post is refused). Every post carries the session's CSRF secret.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, raw, redirect

from wingman.api.context import node
from wingman.api.ui import render
from wingman.api.ui.session import Session, clear_cookie, csrf_ok, session_of, set_cookie, sign_in
from wingman.engine.diagrams.statechart import export
from wingman.engine.diagrams.timeline import keep_intervals, timeline_diagram
from wingman.engine.diagrams.window import Window, passage
from wingman.engine.event_types import Cause
from wingman.engine.events import Metadata
from wingman.engine.power.service import ServerInstalling, SuspendedServer
from wingman.engine.servers.registry import UnknownServer
from wingman.engine.store.event_store import StoreUnavailable

bp = Blueprint("ui", url_prefix="/ui")
ACTIONS = ("start", "stop", "restart", "kill")
# Only what the page itself serves: its scripts, styles and images. No inline script runs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[..., Awaitable[HTTPResponse]]


def signed_in(handler: Handler) -> Handler:
    """The page's handlers get the session; without one a page goes to the sign-in, and anything
    else (a post, a fragment, the event stream) gets a 401."""

    @wraps(handler)
    async def checked(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        session = session_of(request, node(request).config)
        if session is None:
            if request.method == "GET" and "hx-request" not in request.headers:
                return redirect("/ui/login", status=303)
            return empty(status=401)
        return await handler(request, session, *args, **kwargs)

    return checked


@bp.on_response
async def security_headers(request: Request, response: HTTPResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _secure(request: Request) -> bool:
    return request.scheme == "https"


# -- signing in -----------------------------------------------------------------------------


@bp.get("/login")
async def login_form(request: Request) -> HTTPResponse:
    return render.page("login.html")


@bp.post("/login")
async def login(request: Request) -> HTTPResponse:
    token = (request.form.get("token") or "").strip() if request.form else ""
    signed = sign_in(node(request).config, token) if token else None
    if signed is None:
        return render.page("login.html", status=403, error="That token is not this node's, nor an audit token.")
    _session, cookie = signed
    response = redirect("/ui", status=303)
    set_cookie(response, cookie, _secure(request))
    return response


@bp.post("/logout")
@signed_in
async def logout(request: Request, session: Session) -> HTTPResponse:
    if not csrf_ok(request, session):
        return empty(status=403)
    response = redirect("/ui/login", status=303)
    clear_cookie(response)
    return response


# -- servers ---------------------------------------------------------------------------------


@bp.get("/")
@signed_in
async def servers(request: Request, session: Session) -> HTTPResponse:
    views = sorted(node(request).servers().values(), key=lambda v: (_name(v), v.uuid))
    rows = [{"uuid": v.uuid, "name": _name(v), "state": v.state} for v in views]
    return render.page("servers.html", session=session, servers=rows)


def _server_or_404(request: Request, uuid: str) -> Any:
    try:
        return node(request).server(str(uuidlib.UUID(uuid)))
    except (ValueError, UnknownServer):
        return None


@bp.get("/servers/<uuid:str>")
@signed_in
async def server(request: Request, session: Session, uuid: str) -> HTTPResponse:
    view = _server_or_404(request, uuid)
    if view is None:
        return render.page("missing.html", status=404, session=session, what="No server with that id on this node.")
    the_node = node(request)
    return render.page(
        "server.html",
        session=session,
        server={"uuid": view.uuid, "name": _name(view), "state": view.state},
        operations=the_node.recent_operations(view.uuid),
        console=the_node.console_tail(view.uuid, 100),
        actions=ACTIONS,
        at=the_node.last_position,
    )


@bp.get("/servers/<uuid:str>/timeline")
@signed_in
async def timeline_image(request: Request, session: Session, uuid: str) -> HTTPResponse:
    """The timeline's image again, at the log's new position (the page asks after an operation)."""
    view = _server_or_404(request, uuid)
    if view is None:
        return empty(status=404)
    return render.page("_timeline.html", server={"uuid": view.uuid}, at=node(request).last_position)


@bp.get("/servers/<uuid:str>/operations")
@signed_in
async def operations(request: Request, session: Session, uuid: str) -> HTTPResponse:
    view = _server_or_404(request, uuid)
    if view is None:
        return empty(status=404)
    return render.page("_operations.html", operations=node(request).recent_operations(view.uuid))


@bp.post("/servers/<uuid:str>/power")
@signed_in
async def power(request: Request, session: Session, uuid: str) -> HTTPResponse:
    if not csrf_ok(request, session) or not session.may_act:
        return empty(status=403)
    view = _server_or_404(request, uuid)
    action = request.form.get("action") if request.form else None
    if view is None or action not in ACTIONS:
        return empty(status=404 if view is None else 400)
    meta = Metadata(
        actor="node-token",
        channel="ui",
        source_ip=request.remote_addr or request.ip,
        request_id=request.ctx.request_id,
        cause=Cause.OPERATOR,
    )
    try:
        await node(request).request_power(view.uuid, action, None, meta)
    except SuspendedServer:
        return _refused(request, view.uuid, 400, "The server is suspended.")
    except ServerInstalling:
        return _refused(request, view.uuid, 409, "The server is installing.")
    except StoreUnavailable:
        return _refused(request, view.uuid, 503, "The event store cannot commit now; nothing was done.")
    if "hx-request" in request.headers:
        return empty(status=204)  # the state and the operation arrive through the event stream
    return redirect(f"/ui/servers/{view.uuid}", status=303)


def _refused(request: Request, uuid: str, status: int, why: str) -> HTTPResponse:
    return render.page("_notice.html", status=status, notice=why)


@bp.get("/servers/<uuid:str>/timeline.svg")
@signed_in
async def timeline(request: Request, session: Session, uuid: str) -> HTTPResponse:
    view = _server_or_404(request, uuid)
    if view is None:
        return empty(status=404)
    p = await passage(node(request).db, view.uuid, Window(None, None), keep_intervals())
    return raw(timeline_diagram(node(request).chart, p, "svg"), content_type="image/svg+xml")


# -- audit -----------------------------------------------------------------------------------


@bp.get("/audit")
@signed_in
async def audit(request: Request, session: Session) -> HTTPResponse:
    the_node = node(request)
    checkpointer = the_node.checkpointer
    report, checkpoints = await the_node.verify(None, checkpointer.public_key)
    last = checkpointer.last
    return render.page(
        "audit.html",
        session=session,
        report=report,
        checkpoints=checkpoints,
        checkpoint=last.body if last is not None else None,
        public_key=checkpointer.public_key,
    )


@bp.get("/statechart.svg")
@signed_in
async def statechart(request: Request, session: Session) -> HTTPResponse:
    return raw(export(node(request).chart, "svg"), content_type="image/svg+xml")


def _name(view: Any) -> str:
    config = view.config
    return (getattr(config, "name", None) or "") if config is not None else ""
