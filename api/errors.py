"""Every error the API answers is JSON: `{"error": "..."}` with the right status, never HTML or a
bare 500. Handlers raise these (or Sanic's own exceptions) and the app renders them here."""
from __future__ import annotations

import structlog
from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import JSONResponse, json

from engine.servers.registry import UnknownServer
from engine.store.event_store import StoreUnavailable

log = structlog.get_logger("wingman.api")

NOT_FOUND = "The requested resource does not exist on this instance."


class ApiError(SanicException):
    """An error with a message meant for the caller."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message, status_code=status, headers=headers)


def json_error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return json({"error": message}, status=status, headers=headers)


def install(app: Sanic) -> None:
    @app.exception(UnknownServer)
    async def _unknown_server(request: Request, exc: UnknownServer):
        return json_error(404, NOT_FOUND)

    @app.exception(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable):
        log.error("event store unavailable", reason=str(exc), path=request.path)
        return json_error(503, f"The event store cannot record this request right now: {exc}")

    @app.exception(SanicException)
    async def _sanic(request: Request, exc: SanicException):
        status = getattr(exc, "status_code", 500) or 500
        message = str(exc) if str(exc) else "error"
        if status == 404 and not isinstance(exc, ApiError):
            message = NOT_FOUND
        elif status == 413:
            message = "The request body is too large (the limit is 64 KiB)."
        elif status == 405:
            message = f"Method {request.method} is not allowed here."
        elif status >= 500 and not isinstance(exc, ApiError):  # an ApiError 5xx (502) is meant for the caller
            log.error("server error", path=request.path, error=message)
            message = "Internal error; see the daemon's log."
        return json_error(status, message, headers=getattr(exc, "headers", None))

    @app.exception(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error", path=request.path)
        return json_error(500, "Internal error; see the daemon's log.")
