"""The Sanic application. Built by a factory (one app per daemon, and per test), run in a single
process: power locks and state machines live in this process's memory."""
from __future__ import annotations

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

from api import auth, errors
from api.routes import audit, diagrams, power, servers, stream, system
from api.websocket import routes as websocket
from engine.config import DaemonConfig
from engine.daemon import Daemon
from engine.events import new_id

MAX_BODY = 64 * 1024


def create_app(config: DaemonConfig, name: str = "wingman", daemon: Daemon | None = None) -> Sanic:
    app = Sanic(name)
    app.config.REQUEST_MAX_SIZE = MAX_BODY
    app.config.REQUEST_ID_HEADER = "X-Request-Id"
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.ACCESS_LOG = False
    app.config.OAS_URL_PREFIX = "/api/docs"
    app.config.OAS_URI_TO_JSON = "/openapi.json"
    app.config.OAS_UI_DEFAULT = "redoc"
    app.config.CORS = False
    app.config.HEALTH = False
    app.ext.openapi.describe("wingman", version="0.1.0", description=(
        "Event-sourced power daemon for game servers, compatible with the Pterodactyl Wings power API. "
        "Authenticate with `Authorization: Bearer <node token>`."))
    app.ctx.daemon = daemon or Daemon(config)

    errors.install(app)
    auth.install(app)
    for blueprint in (power.bp, servers.bp, system.bp, audit.bp, diagrams.bp, stream.bp):
        app.blueprint(blueprint)
    websocket.install(app)  # the Wings websocket: its blueprint and frame size limit

    @app.get("/api/openapi.json")
    async def openapi_document(request: Request):
        # The spec sanic-ext builds, at the address clients expect; routes do not change at run
        # time, so it is built once.
        if not hasattr(request.app.ctx, "openapi"):
            from sanic_ext.extensions.openapi.builders import SpecificationBuilder

            request.app.ctx.openapi = SpecificationBuilder().build(request.app).serialize()
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
        await app.ctx.daemon.start()

    @app.after_server_stop
    async def stop_daemon(app: Sanic):
        await app.ctx.daemon.stop()

    return app
