"""Wings' routes for what wingman is not: its file manager, backups, transfers, downloads and
uploads, and its config update. wingman is a power daemon; these belong to Wings (or to a tool
beside wingman).

A Panel pointed at a wingman node still calls them: its file manager lists a folder, its backup
button posts one. Each answers a 501 that names what is missing, so the Panel shows a reason
instead of waiting on a route nobody serves (a 404 would read as "no such server"). The server is
looked up first, as on every server route, so an unknown server is still a 404."""

from __future__ import annotations

from sanic import Blueprint, Request

from wingman.api.context import node
from wingman.api.errors import ApiError
from wingman.api.openapi.describe import doc

bp = Blueprint("not_provided")

NOT_HERE = "wingman is a power daemon: {what} is not part of it (see the README's first screen)."
FILES = NOT_HERE.format(what="the file manager (Wings' files API and SFTP)")
BACKUPS = NOT_HERE.format(what="backups")
TRANSFERS = NOT_HERE.format(what="moving a server to another node (transfers)")
DOWNLOADS = NOT_HERE.format(what="downloading and uploading files")
CONFIG_UPDATE = NOT_HERE.format(what="rewriting its config file from the Panel (POST /api/update)")

# (path, methods, the reason); paths in Wings' router (router/router.go).
_SERVER_ROUTES = (
    ("/files/contents", ("GET",), FILES),
    ("/files/list-directory", ("GET",), FILES),
    ("/files/rename", ("PUT",), FILES),
    ("/files/copy", ("POST",), FILES),
    ("/files/write", ("POST",), FILES),
    ("/files/create-directory", ("POST",), FILES),
    ("/files/delete", ("POST",), FILES),
    ("/files/compress", ("POST",), FILES),
    ("/files/decompress", ("POST",), FILES),
    ("/files/chmod", ("POST",), FILES),
    ("/files/pull", ("GET", "POST"), FILES),
    ("/files/pull/<download:str>", ("DELETE",), FILES),
    ("/backup", ("POST",), BACKUPS),
    ("/backup/<backup:str>/restore", ("POST",), BACKUPS),
    ("/backup/<backup:str>", ("DELETE",), BACKUPS),
    ("/transfer", ("POST", "DELETE"), TRANSFERS),
)
_NODE_ROUTES = (
    ("/api/transfers", ("POST",), TRANSFERS),
    ("/api/transfers/<server:str>", ("DELETE",), TRANSFERS),
    ("/api/update", ("POST",), CONFIG_UPDATE),
    # Outside /api: Wings authenticates these with a signed URL, so nothing is asked of the caller here.
    ("/download/backup", ("GET",), DOWNLOADS),
    ("/download/file", ("GET",), DOWNLOADS),
    ("/upload/file", ("POST",), DOWNLOADS),
)


def _server_route(reason: str):
    @doc("Not provided by wingman (a Wings route)", reason, errors=(501,), tags=("not provided",))
    async def handler(request: Request, uuid: str, **_ids: str):
        node(request).server(uuid)  # an unknown server is a 404, as on every server route
        raise ApiError(501, reason)

    return handler


def _node_route(reason: str):
    @doc("Not provided by wingman (a Wings route)", reason, errors=(501,), tags=("not provided",))
    async def handler(request: Request, **_ids: str):
        raise ApiError(501, reason)

    return handler


for _i, (_path, _methods, _reason) in enumerate(_SERVER_ROUTES):
    bp.add_route(_server_route(_reason), f"/api/servers/<uuid:str>{_path}", methods=_methods, name=f"server_{_i}")
for _i, (_path, _methods, _reason) in enumerate(_NODE_ROUTES):
    bp.add_route(_node_route(_reason), _path, methods=_methods, name=f"node_{_i}")
