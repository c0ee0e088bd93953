"""Request bodies, validated with pydantic in strict mode: `"5"`, `1.5` and `true` are not integers;
and query values, read exactly in the forms the OpenAPI document declares for them.

Bodies are read as JSON whatever their Content-Type, as Wings does (gin's BindJSON ignores the
header): a Panel or script that sends `text/plain` keeps working. A key given twice is refused:
"last one wins" would let `{"action": "bogus", "action": "kill"}` mean something a log reader
cannot see.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator
from sanic import Request

from wingman.api.errors import ApiError
from wingman.engine.events import ACTIONS
from wingman.engine.servers.patterns import console_line_problem
from wingman.engine.servers.process_configuration import CONSOLE_LINE
from wingman.engine.store.points import END, MAX_POSITION, BadPoint, Point, parse_time

Model = TypeVar("Model", bound=BaseModel)
POWER_ACTION_ERROR = 'The power action provided was not valid, should be one of "stop", "start", "restart", "kill"'


class PowerBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # A string (anything else is a 400); one of the four, or Wings' 422: the enum is documented, not
    # validated here, so an unknown action reaches the route and gets Wings' own message.
    action: StrictStr = Field(json_schema_extra={"enum": list(ACTIONS)})
    wait_seconds: StrictInt | None = Field(
        None, description="seconds to wait for the power lock; 30 when absent or outside 0..300"
    )


class CommandsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    commands: list[StrictStr] = Field(
        min_length=1,
        max_length=100,
        description="one line of text each",
        json_schema_extra={"items": {"type": "string", "pattern": CONSOLE_LINE}},
    )

    @field_validator("commands")
    @classmethod
    def _one_line_each(cls, commands: list[str]) -> list[str]:
        for i, command in enumerate(commands):
            if problem := console_line_problem(command):
                raise ValueError(f"command {i + 1} cannot be sent: {problem}")
        return commands


class DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


# Made once: `json.loads(..., object_pairs_hook=...)` builds a new decoder on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def json_body(request: Request) -> Any:
    """The parsed JSON body; 400 when it is missing or not JSON."""
    body = request.body
    if not body:
        raise ApiError(400, "The request body is missing; send a JSON object.")
    try:
        # As json.loads reads bytes: UTF-8, or UTF-16/32 told apart by their first bytes.
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except DuplicateKey as exc:
        raise ApiError(400, f"The request body gives the key {str(exc)!r} more than once.") from None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deeply nested JSON
        raise ApiError(400, "The request body is not valid JSON.") from None


def parse(model: type[Model], data: Any) -> Model:
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ApiError(400, f"The request body is not valid: {problems}") from None


# Query values. Sanic drops blank ones (`?since=` is no `since`), which the document says with
# `allowEmptyValue`. Otherwise a value is taken only in the form the document declares: `int()`
# would also take "+5", " 5", "5_0" and other scripts' digits, and the audit's time parser a space
# for the `T` and spaces around the time, none of which JSON Schema's `integer` or `date-time`
# allows.
_DIGITS = re.compile(r"[0-9]+")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
EXAMPLE_TIME = "2026-11-28T03:12:00Z"


def whole_number(raw: str, name: str, low: int = 0, high: int = MAX_POSITION) -> int:
    """`raw` as an integer from `low` to `high` written in ASCII digits; a 400 otherwise."""
    value = int(raw) if _DIGITS.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise ApiError(400, f"`{name}` must be a whole number, at least {low} and at most {high}, not {raw!r}")
    return value


def query_int(request: Request, name: str, default: int, low: int = 0, high: int = MAX_POSITION) -> int:
    raw = request.args.get(name)
    return default if raw is None else whole_number(raw, name, low, high)


def query_time(request: Request, name: str) -> datetime | None:
    """An RFC 3339 date-time (JSON Schema's `date-time`), as aware UTC; None when absent."""
    raw = request.args.get(name)
    if raw is None:
        return None
    if not _DATE_TIME.fullmatch(raw):
        raise ApiError(400, f"`{name}` {raw!r} is not an RFC 3339 time with a time zone, e.g. {EXAMPLE_TIME}")
    try:
        return parse_time(raw, f"`{name}`")
    except BadPoint as exc:  # the right shape, but no such time (month 13, hour 25)
        raise ApiError(400, str(exc)) from None


def query_point(request: Request, name: str) -> Point:
    """A log position (digits) or an RFC 3339 date-time; the end of the log when absent."""
    raw = request.args.get(name)
    if raw is None:
        return END
    if _DIGITS.fullmatch(raw):
        return Point(position=whole_number(raw, name))
    if not _DATE_TIME.fullmatch(raw):
        raise ApiError(
            400,
            f"`{name}` {raw!r} is neither a log position (a whole number) nor an RFC 3339 time "
            f"with a time zone, e.g. {EXAMPLE_TIME}",
        )
    return Point(time=query_time(request, name))
