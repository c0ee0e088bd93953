"""Servers: list, read, add, delete, console commands, logs."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import empty, json

from wingman.api.context import node
from wingman.api.errors import ApiError
from wingman.api.openapi.describe import Answer, Param, doc
from wingman.api.openapi.schemas import CreateServerBody, LogsBody, PanelCreateBody, ServerBody, ServerList
from wingman.api.requests import CommandsBody, json_body, parse, query_int
from wingman.api.routes.common import metadata_for
from wingman.engine.environments.base import RuntimeFailure, RuntimeUnavailable
from wingman.engine.event_types import Cause
from wingman.engine.install.service import InstallRefused
from wingman.engine.node import NoPanel
from wingman.engine.power.outcomes import Rejected
from wingman.engine.power.processes import NotRunning
from wingman.engine.remote.client import PanelError
from wingman.engine.remote.installs import PanelRefused
from wingman.engine.servers.definition import InvalidDefinition
from wingman.engine.servers.registry import ServerExists

bp = Blueprint("servers")
MAX_LOG_LINES = 1000


def server_body(request: Request, view) -> dict:
    """A server as the API shows it: its folded state, Wings' `utilization` (the last sample: never
    measured on the request's path), whether boot recovery has restored it yet (`pending`
    while the daemon is still reconciling it with its process or container), and an exit seen
    but not in the log yet (`exit_pending`: the state says what the log says until then)."""
    return {**view.as_dict(), **node(request).server_status(view.uuid)}


@bp.get("/api/servers", ctx_read_only=True)
@doc(
    "Every server on this node with its state and utilization",
    answers={200: Answer("The servers, by uuid", ServerList)},
)
async def list_servers(request: Request):
    views = node(request).servers().values()
    return json([server_body(request, v) for v in sorted(views, key=lambda v: v.uuid)])


@bp.get("/api/servers/<uuid:str>", ctx_read_only=True)
@doc(
    "One server: state, suspension, configuration, stream version, utilization",
    answers={200: Answer("The server", ServerBody)},
)
async def get_server(request: Request, uuid: str):
    return json(server_body(request, node(request).server(uuid)))


@bp.post("/api/servers")
@doc(
    "Add a server: from the Panel by its uuid (Wings' create), or from its full definition",
    'Wings\' body `{"uuid": ..., "start_on_completion": bool}` (a node with a Panel): the definition is '
    "fetched from the Panel (`GET {remote}/api/remote/servers/{uuid}`) and registered, answered 202; then, in the "
    "background, the server installs (`installing`: the egg's install script runs in its installer container, "
    "`install.*` events), the installation is reported to the Panel "
    "(`POST {remote}/api/remote/servers/{uuid}/install`, `panel.install_reported`) and the server started when "
    "`start_on_completion` is true and the installation succeeded. The Panel unreachable, or a definition from it "
    "that cannot be taken (`panel.server_refused`; the Panel is told the installation failed), is a 502; a node "
    "without a Panel answers this body with 409.\n\n"
    "The full definition (the document a Panel serves; a standalone node): `settings.uuid` is the only required "
    "key, answered 201. A definition that could never start (a done-line regex RE2 cannot compile, limits too "
    "large to apply, NUL in the environment, an allocation IP this host does not have) is a 422, and nothing is "
    "written.",
    body=CreateServerBody,
    errors=(400, 409, 422, 502, 503),
    answers={
        201: Answer("Created from the full definition", ServerBody, headers={"Location": "/api/servers/{uuid}"}),
        202: Answer(
            "Registered from the Panel; being installed", ServerBody, headers={"Location": "/api/servers/{uuid}"}
        ),
    },
)
async def create_server(request: Request):
    body = json_body(request)
    if isinstance(body, dict) and "settings" not in body and "uuid" in body:
        return await _create_from_panel(request, parse(PanelCreateBody, body))
    try:
        view = await node(request).register(body, metadata_for(request))
    except InvalidDefinition as exc:
        raise ApiError(422, f"The server definition is not valid: {exc}") from None
    except ServerExists as exc:
        raise ApiError(409, str(exc)) from None
    return json(server_body(request, view), status=201, headers={"Location": f"/api/servers/{view.uuid}"})


async def _create_from_panel(request: Request, body: PanelCreateBody):
    try:
        view = await node(request).create_from_panel(body.uuid, body.start_on_completion, metadata_for(request))
    except NoPanel:
        # 409, not 422: the body is right, the node is not in a state to take it (as sync without a Panel).
        raise ApiError(
            409, "This node has no Panel (`remote` is not set): send the server's full definition."
        ) from None
    except PanelError as exc:
        raise ApiError(502, f"The Panel could not be asked for the server's definition: {exc}") from None
    except PanelRefused as exc:
        raise ApiError(502, str(exc)) from None
    except ServerExists as exc:
        raise ApiError(409, str(exc)) from None
    return json(server_body(request, view), status=202, headers={"Location": f"/api/servers/{view.uuid}"})


@bp.delete("/api/servers/<uuid:str>")
@doc(
    "Delete a server whatever its state, as Wings does; its history stays in the log",
    "Each step is an event with cause `delete`: `server.suspended` (no start is accepted from then on), a "
    "kill through the power engine when anything runs or starts (an operation, which cancels a start in "
    "flight), `server.environment_destroyed` (its container, or its console files), `server.deleted`, and, "
    "after the answer, `server.files_removed` or `server.files_removal_failed` for its folder (removed in the "
    "background without following symlinks; a failure is recorded, not answered). Afterwards "
    "`GET /api/servers/{uuid}` is a 404 while `/events` and `/state` still answer (`deleted` is true). When "
    "the server cannot be stopped (409) or its runtime cannot be reached (502, 503) it stays, suspended.",
    errors=(409, 502, 503),
    answers={204: Answer("Deleted: stopped, its container and console files removed; its folder is being removed")},
)
async def delete_server(request: Request, uuid: str):
    meta = metadata_for(request).model_copy(update={"cause": Cause.DELETE})
    try:
        await node(request).delete(uuid, meta)
    except Rejected as exc:
        raise ApiError(409, f"Cannot delete the server: {exc}.") from None
    except RuntimeUnavailable as exc:
        raise ApiError(503, f"Cannot delete the server now: {exc}") from None
    except RuntimeFailure as exc:
        raise ApiError(502, f"Cannot delete the server: {exc}") from None
    return empty(status=204)


@bp.post("/api/servers/<uuid:str>/commands")
@doc(
    "Send console commands to a running server",
    "Each command is one line of text: no line break, NUL or other control character (tab aside).",
    body=CommandsBody,
    errors=(400, 502),
    answers={204: Answer("Written to the server's console input")},
)
async def send_commands(request: Request, uuid: str):
    the_node = node(request)
    the_node.server(uuid)
    body = parse(CommandsBody, json_body(request))
    try:
        for command in body.commands:
            await the_node.send_command(uuid, command)
    except NotRunning:
        raise ApiError(502, "Cannot send commands to a stopped server instance.") from None
    except RuntimeFailure as exc:
        raise ApiError(502, f"Cannot send commands to the server: {exc}") from None
    return empty(status=204)


@bp.get("/api/servers/<uuid:str>/logs", ctx_read_only=True)
@doc(
    "The last console lines",
    params=[Param("size", {"type": "integer", "minimum": 1, "maximum": 1000}, "How many lines (default 100).")],
    errors=(400,),
    answers={200: Answer("The lines, oldest first", LogsBody)},
)
async def logs(request: Request, uuid: str):
    the_node = node(request)
    the_node.server(uuid)
    size = query_int(request, "size", 100, 1, MAX_LOG_LINES)
    return json({"data": the_node.console_tail(uuid, size)})


@bp.post("/api/servers/<uuid:str>/sync")
@doc(
    "Fetch the server's definition from the Panel now (Wings' sync)",
    "`GET {remote}/api/remote/servers/{uuid}`; a changed definition is recorded "
    "(`server.configuration_changed`, cause `panel_sync`). A node without a Panel is a 409; the Panel "
    "unreachable, or a definition from it that cannot be taken (`panel.server_refused`), a 502: nothing changes.",
    errors=(409, 502, 503),
    answers={204: Answer("The recorded definition is the Panel's")},
)
async def sync_server(request: Request, uuid: str):
    the_node = node(request)
    the_node.server(uuid)
    if not the_node.has_panel:
        raise ApiError(409, "This node has no Panel (`remote` is not set) to sync the server from.")
    try:
        await the_node.sync(uuid, metadata_for(request))
    except PanelError as exc:
        raise ApiError(502, f"The Panel could not be asked for the server's definition: {exc}") from None
    except PanelRefused as exc:
        raise ApiError(502, str(exc)) from None
    return empty(status=204)


@bp.post("/api/servers/<uuid:str>/reinstall")
@doc(
    "Run the egg's install script again (Wings' reinstall)",
    "As Wings: a server that is not offline is stopped first (a `stop` operation, cause `reinstall`), its "
    "definition synced from the Panel, then its install runs with `reinstall: true` (the server is `installing`; "
    "`install.*` events; `POST {remote}/api/remote/servers/{uuid}/install` says how it went). Answered once the "
    "first step is recorded (the stop's request, or the install's start). While the power lock is busy (an "
    "install included) it is a 409 with Wings' words; a node without a Panel answers 409 too.",
    errors=(409, 503),
    answers={202: Answer("Accepted: the reinstall runs in the background")},
)
async def reinstall_server(request: Request, uuid: str):
    the_node = node(request)
    the_node.server(uuid)
    if not the_node.has_panel:
        raise ApiError(409, "This node has no Panel (`remote` is not set) to take the server's install script from.")
    try:
        await the_node.reinstall(uuid, metadata_for(request))
    except InstallRefused as exc:
        raise ApiError(409, str(exc)) from None
    return empty(status=202)
