"""The Wings power endpoint and the operations it creates."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from wingman.api.context import node
from wingman.api.errors import ApiError, json_error
from wingman.api.openapi.describe import Answer, doc
from wingman.api.openapi.schemas import OperationBody, OperationWithEvents
from wingman.api.requests import POWER_ACTION_ERROR, PowerBody, json_body, parse
from wingman.api.routes.common import metadata_for, operation_body
from wingman.engine.events import ACTIONS
from wingman.engine.power.outcomes import INSTALLING_MESSAGE, SUSPENDED_MESSAGE, ServerInstalling, SuspendedServer

bp = Blueprint("power")


@bp.post("/api/servers/<uuid:str>/power")
@doc(
    "Start, stop, restart or kill a server (Wings-compatible)",
    "The request is durable before the 202; the action runs in the background under the server's power "
    "lock (`wait_seconds`: how long to wait for it, 30 when absent or outside 0..300; a kill never waits). "
    "Follow the operation at its `Location`. While the server installs (its egg's script runs), every action, "
    "a kill included, is refused with 409 `server is currently installing`, and nothing is recorded.",
    body=PowerBody,
    errors=(400, 409, 422, 503),
    answers={
        202: Answer(
            "Accepted: the operation runs in the background",
            OperationBody,
            headers={"Location": "/api/operations/{id}"},
        )
    },
)
async def power(request: Request, uuid: str) -> HTTPResponse:
    the_node = node(request)
    the_node.server(uuid)  # 404 before the body is even looked at, as in Wings
    body = parse(PowerBody, json_body(request))
    if body.action not in ACTIONS:
        return json_error(422, POWER_ACTION_ERROR)
    try:
        op = await the_node.request_power(uuid, body.action, body.wait_seconds, metadata_for(request))
    except SuspendedServer:
        return json_error(400, SUSPENDED_MESSAGE)
    except ServerInstalling:  # nothing recorded: Wings' words, but said now instead of dropped later
        return json_error(409, INSTALLING_MESSAGE)
    return json(operation_body(op), status=202, headers={"Location": f"/api/operations/{op.id}"})


@bp.get("/api/operations/<operation_id:str>", ctx_read_only=True)
@doc(
    "An operation's status, reason and events",
    answers={200: Answer("The operation, with its outcome once it has one", OperationWithEvents)},
)
async def operation(request: Request, operation_id: str) -> HTTPResponse:
    op, events = await node(request).operation(operation_id)
    if op is None:
        raise ApiError(404, "No operation with that id on this node.")
    body = operation_body(op)
    body["events"] = [
        {
            "position": e.position,
            "version": e.version,
            "type": e.type,
            "data": e.data,
            "metadata": e.metadata,
            "recorded_at": e.recorded_at.isoformat(),
        }
        for e in events
    ]
    return json(body)
