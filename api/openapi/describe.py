"""What a route says about itself for the OpenAPI document: `@doc(...)` on the handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from wingman.engine.store.points import MAX_POSITION

ERROR_STATUSES = {
    400: "The request is malformed or not valid here; the error says why.",
    401: "No `Authorization: Bearer <token>` header.",
    403: "The token is wrong, or an audit token asked to change something.",
    404: "No such server (or operation) on this node.",
    409: "The request conflicts with the server's state; the error says how.",
    413: "The request body is over 64 KiB.",
    414: "The request line is over 8 KiB.",
    422: "The body is well formed but not acceptable (an unknown power action, a definition that could never run).",
    426: "Not a websocket handshake: this path only opens a websocket.",
    429: "Too many of these at once.",
    431: "The request's header fields are over 8 KiB.",
    502: "The server's runtime refused (its process is not running, its console is gone).",
    501: "wingman does not provide this Wings route (it is a power daemon); the error names what is missing.",
    503: "The event store cannot record the request now (disk full, read-only, gone); nothing was done.",
}


@dataclass(frozen=True)
class Param:
    """A query (or header) parameter."""

    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False
    where: str = "query"


@dataclass(frozen=True)
class Answer:
    """One documented response: a model, or a schema per media type, or nothing (204)."""

    description: str
    model: type[BaseModel] | None = None
    content: dict[str, dict[str, Any]] | None = None  # media type -> schema, for what is not JSON
    headers: dict[str, str] = field(default_factory=dict)  # name -> description


@dataclass(frozen=True)
class OperationDoc:
    summary: str
    description: str = ""
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | None = None
    answers: dict[int, Answer] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    extensions: dict[str, Any] = field(default_factory=dict)  # x-* keys: e.g. a websocket, a stream


Handler = TypeVar("Handler", bound=Callable[..., Any])


def doc(
    summary: str,
    description: str = "",
    *,
    params: Any = (),
    body: Any = None,
    answers: Any = None,
    errors: Any = (),
    tags: Any = (),
    **extensions: Any,
) -> Callable[[Handler], Handler]:
    """Describe a handler for the OpenAPI document. `extensions` become `x-wingman-*` keys."""
    described = OperationDoc(
        summary,
        description,
        tuple(params),
        body,
        dict(answers or {}),
        tuple(errors),
        tuple(tags),
        {f"x-wingman-{k.replace('_', '-')}": v for k, v in extensions.items()},
    )

    def mark(handler: Handler) -> Handler:
        handler.__openapi__ = described  # type: ignore[attr-defined]
        return handler

    return mark


# The forms the routes' parsers take (api/requests.py), as JSON Schema: the document promises no
# more and no less than they accept.
TIME = {"type": "string", "format": "date-time"}
POSITION = {"type": "integer", "minimum": 0, "maximum": MAX_POSITION}
# 43 base64 characters and one `=`: 32 bytes. A space stands for a `+` a client left unescaped.
KEY = {"type": "string", "pattern": "^[A-Za-z0-9+/ ]{43}=$"}

AFTER = Param("after", POSITION, "Events after this log position (default 0).")
LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "At most this many events (default 100).")
TYPES = Param("type", {"type": "string"}, "Event types, comma-separated; `power.*` matches a prefix.")
ACTOR = Param("actor", {"type": "string"}, "Only events with this actor in their metadata.")
OPERATION = Param("operation", {"type": "string"}, "Only events of this operation.")
SINCE = Param("since", TIME, "From this RFC 3339 time with a zone (inclusive).")
UNTIL = Param(
    "until",
    TIME,
    "Up to this RFC 3339 time with a zone (inclusive); not before `since` "
    "(a 400: an inverted window is a mistake, not an empty answer).",
)
SERVER = Param("server", {"type": "string"}, "Only this server (its uuid).")
EVENT_FILTERS = (AFTER, TYPES, ACTOR, OPERATION, SINCE, UNTIL)
