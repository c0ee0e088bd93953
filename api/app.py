"""The Sanic application. Built by a factory (one app per daemon, and per test), run in a single
process: power locks and state machines live in this process's memory."""

from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

from wingman.api import auth, errors, ui
from wingman.api.context import node_of
from wingman.api.openapi.describe import Answer, doc
from wingman.api.openapi.document import build as build_openapi
from wingman.api.routes import audit, diagrams, metrics, not_provided, power, schedules, servers, stream, system, tlog
from wingman.api.websocket import routes as websocket
from wingman.api.websocket.protocol import SocketProtocol
from wingman.engine.config import DaemonConfig
from wingman.engine.daemon import Daemon
from wingman.engine.events import new_id
from wingman.engine.node import Node

MAX_BODY = 64 * 1024
# What to serve the app with (`protocol=` of `app.run` and `app.create_server`): Sanic's default
# keeps each closed websocket's memory for up to 30 s (api.websocket.protocol).
PROTOCOL = SocketProtocol
DESCRIPTION = (
    "Event-sourced power daemon for game servers, compatible with the Pterodactyl Wings power API. "
    "Authenticate with `Authorization: Bearer <node token>` (or an audit token, on the read-only endpoints)."
)


def create_app(config: DaemonConfig, name: str = "wingman", daemon: Daemon | None = None) -> Sanic:
    app = Sanic(name)
    app.config.AUTO_EXTEND = False  # no Sanic Extensions: the OpenAPI document is our own (api.openapi)
    app.config.REQUEST_MAX_SIZE = MAX_BODY
    app.config.REQUEST_ID_HEADER = "X-Request-Id"
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.ACCESS_LOG = False
    app.ctx.node = Node(daemon or Daemon(config))  # the ways in reach the engine through it (api.context)

    errors.install(app)
    auth.install(app)
    for blueprint in (power.bp, servers.bp, system.bp, audit.bp, diagrams.bp, stream.bp, not_provided.bp, schedules.bp):
        app.blueprint(blueprint)
    app.blueprint(tlog.bp)  # the checkpoint and tree in the C2SP formats
    websocket.install(app)  # the Wings websocket: its blueprint and frame size limit
    ui.install(app)  # the operator page, /ui

    @app.get("/api/openapi.json")
    @doc(
        "This document (OpenAPI 3.1)",
        answers={200: Answer("The OpenAPI document", content={"application/json": {"type": "object"}})},
    )
    async def openapi_document(request: Request):
        # Routes do not change at run time: the document is built once, on first request.
        if not hasattr(request.app.ctx, "openapi"):
            states = node_of(request.app).chart.states  # the chart in force, adopted at start
            request.app.ctx.openapi = build_openapi(
                request.app, "wingman", _version(), DESCRIPTION, auth.PUBLIC_PATHS, states
            )
        return json(request.app.ctx.openapi)

    @app.on_request(priority=100)
    async def remember_request_id(request: Request):
        # The caller's id verbatim (Sanic's request.id would normalize it), or a fresh one.
        given = request.headers.get("x-request-id", "").strip()
        request.ctx.request_id = given[:128] if given else new_id()

    @app.on_response
    async def add_request_id(request: Request, response: HTTPResponse):
        response.headers["X-Request-Id"] = getattr(request.ctx, "request_id", None) or str(request.id)

    @app.before_server_start
    async def start_daemon(app: Sanic):
        await node_of(app).daemon.start()

    @app.after_server_stop
    async def stop_daemon(app: Sanic):
        await node_of(app).daemon.stop()

    metrics.install(app)  # after the daemon's listener: the metrics read its store once it is open

    return app


def _version() -> str:
    from importlib.metadata import version

    return version("wingman")
