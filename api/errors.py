"""Every error the API answers is JSON: `{"error": "..."}` with the right status, never HTML or a
bare 500. Handlers raise these (or Sanic's own exceptions) and the app renders them here."""

from __future__ import annotations

import structlog
from sanic import Request, Sanic
from sanic.exceptions import PayloadTooLarge, SanicException
from sanic.response import JSONResponse, json

from wingman.engine.servers.registry import UnknownServer
from wingman.engine.store.event_store import ServerOfAnotherNode, StoreClosed, StoreUnavailable

log = structlog.get_logger("wingman.api")

NOT_FOUND = "The requested resource does not exist on this instance."


class ApiError(SanicException):
    """An error with a message meant for the caller."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message, status_code=status, headers=headers)


def json_error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return json({"error": message}, status=status, headers=headers)


def _too_large(request: Request, exc: PayloadTooLarge) -> JSONResponse:
    """Sanic says 413 for a body over the limit and for a head over it: tell them apart, and the
    request line (414) from the header fields (431)."""
    if "header" not in str(exc).lower():
        return json_error(
            413, f"The request body is too large (the limit is {request.app.config.REQUEST_MAX_SIZE // 1024} KiB)."
        )
    limit = request.app.config.REQUEST_MAX_HEADER_SIZE
    head = bytes(getattr(getattr(request, "stream", None), "recv_buffer", b"") or b"")
    line_end = head.find(b"\r\n")
    if line_end < 0 or line_end >= limit:
        return json_error(414, f"The request line (method and path) is too long (the limit is {limit} bytes).")
    return json_error(431, f"The request header fields are too large (the limit is {limit} bytes in all).")


def install(app: Sanic) -> None:
    @app.exception(UnknownServer)
    async def _unknown_server(request: Request, exc: UnknownServer):
        return json_error(404, NOT_FOUND)

    @app.exception(StoreUnavailable, StoreClosed)
    async def _store_down(request: Request, exc: Exception):
        log.error("event store unavailable", reason=str(exc), path=request.path)
        return json_error(503, f"The event store cannot record this request right now: {exc}")

    @app.exception(ServerOfAnotherNode)  # a fleet's shared database: the server is another node's
    async def _another_node(request: Request, exc: ServerOfAnotherNode):
        return json_error(409, str(exc))

    @app.exception(PayloadTooLarge)
    async def _payload_too_large(request: Request, exc: PayloadTooLarge):
        return _too_large(request, exc)

    @app.exception(SanicException)
    async def _sanic(request: Request, exc: SanicException):
        status = getattr(exc, "status_code", 500) or 500
        message = str(exc) if str(exc) else "error"
        headers = dict(getattr(exc, "headers", None) or {})
        if status == 404 and not isinstance(exc, ApiError):
            message = NOT_FOUND
        elif status == 405:
            message = f"Method {request.method} is not allowed here."
            allowed = _allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        elif status >= 500 and not isinstance(exc, ApiError):  # an ApiError 5xx (502) is meant for the caller
            log.error("server error", path=request.path, error=message)
            message = "Internal error; see the daemon's log."
        return json_error(status, message, headers=headers or None)

    @app.exception(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error", path=request.path)
        return json_error(500, "Internal error; see the daemon's log.")


def _allowed_methods(request: Request) -> list[str]:
    """The methods the path does answer (RFC 9110: a 405 carries `Allow`)."""
    router = request.app.router
    methods: set[str] = set()
    path = request.path
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        try:
            router.get(path, method, request.headers.getone("host", ""))
        except Exception:  # noqa: BLE001 - NotFound / MethodNotAllowed: not this one
            continue
        methods.add(method)
    return sorted(methods)
