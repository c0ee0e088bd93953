"""The websocket's routes: the socket itself, and the Panel's call that revokes tokens.

The socket is authenticated by the JWT in its first frames, not by a Bearer header (browsers cannot
set one on a websocket), so the app's Bearer check lets it through (api/auth.py) and this
blueprint's own check runs before the upgrade: a foreign Origin (403), an unknown server (404) or a
server at its socket limit (429) are refused with a JSON error before any frame.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, StringConstraints
from sanic import Blueprint, Request, Sanic
from sanic.response import empty

from wingman.api.context import node, node_of
from wingman.api.errors import json_error
from wingman.api.openapi.describe import Answer, doc
from wingman.api.requests import json_body, parse
from wingman.api.routes.common import metadata_for
from wingman.api.websocket.hub import SocketHub
from wingman.api.websocket.origin import origin_allowed
from wingman.api.websocket.session import Session

bp = Blueprint("websocket")


class DenyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Taken as sent (a token's `jti` is compared as it is): 1 to 255 characters each.
    jtis: list[Annotated[StrictStr, StringConstraints(min_length=1, max_length=255)]] = Field(
        max_length=1000, description="the `jti` of each token to refuse from now on"
    )


def install(app: Sanic) -> None:
    """The blueprint, and the frame size limit, which the websocket layer reads from the app."""
    app.config.WEBSOCKET_MAX_SIZE = node_of(app).config.websocket.max_frame_bytes
    app.blueprint(bp)


@bp.before_server_start
async def make_hub(app: Sanic) -> None:
    app.ctx.sockets = SocketHub.for_node(node_of(app))


@bp.on_request
async def before_upgrade(request: Request):
    if request.route is None or not getattr(request.route.extra, "websocket", False):
        return None
    the_node = node(request)
    if not origin_allowed(request.headers.get("origin"), the_node.config.remote, the_node.config.allowed_origins):
        return json_error(403, "This origin is not allowed to open a websocket on this node.")
    uuid = request.match_info["uuid"]
    the_node.server(uuid)  # UnknownServer: 404, as every server route
    sockets: SocketHub = request.app.ctx.sockets
    if sockets.count.full(uuid):
        return json_error(429, f"Too many websockets are open for this server (the limit is {sockets.count.limit}).")
    return None


@bp.websocket("/api/servers/<uuid:str>/ws")
@doc(
    "The Wings websocket: state, console and stats of one server (Wings-compatible)",
    'Upgrade to a websocket, then send `{"event": "auth", "args": ["<jwt>"]}` with a JWT signed HS256 '
    "with the node token. No Bearer header. Refused before the upgrade: a foreign `Origin` (403), an unknown "
    "server (404), too many sockets (429). See the README's Websocket section.",
    errors=(400, 403, 429),
    websocket=True,
    answers={101: Answer("Switching to the websocket protocol")},
)
async def server_socket(request: Request, ws, uuid: str):
    await Session(request.app.ctx.sockets, ws, uuid, request.remote_addr or request.ip).run()


@bp.post("/api/servers/<uuid:str>/ws/deny")
@doc(
    "Refuse websocket tokens with these jti's issued up to now (Wings-compatible)",
    body=DenyBody,
    errors=(400, 503),
    answers={204: Answer("Denied; recorded as a server.websocket_tokens_denied event")},
)
async def deny_tokens(request: Request, uuid: str):
    the_node = node(request)
    the_node.server(uuid)
    body = parse(DenyBody, json_body(request))
    jtis = list(dict.fromkeys(body.jtis))
    if jtis:  # an empty list denies nothing, and writes nothing
        await the_node.deny_tokens(uuid, jtis, metadata_for(request))
    for session in list(request.app.ctx.sockets.sessions):  # a jti may be in use on any server's socket
        session.recheck_token()
    return empty(status=204)
