"""Small pieces the route modules share."""

from __future__ import annotations

from sanic import Request

from wingman.engine.event_types import Cause
from wingman.engine.events import Metadata
from wingman.engine.servers.operations import Operation


def metadata_for(request: Request) -> Metadata:
    """Who asked, through which channel: recorded with every event a request causes."""
    role = getattr(request.ctx, "role", None)
    return Metadata(
        actor="node-token" if role == "node" else (role or "anonymous"),
        channel=request.headers.get("x-wingman-channel", "http")[:32],
        source_ip=request.remote_addr or request.ip,
        request_id=request.ctx.request_id,
        cause=Cause.OPERATOR,
    )


def operation_body(op: Operation) -> dict:
    body = op.as_dict()
    body["links"] = {"self": f"/api/operations/{op.id}", "server": f"/api/servers/{op.server}"}
    return body
