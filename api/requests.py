"""Request bodies, validated with pydantic in strict mode: `"5"`, `1.5` and `true` are not integers."""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from sanic import Request

from api.errors import ApiError

POWER_ACTION_ERROR = 'The power action provided was not valid, should be one of "stop", "start", "restart", "kill"'


class PowerBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action: StrictStr
    wait_seconds: StrictInt | None = Field(None, description="seconds to wait for the power lock; 30 when absent or outside 0..300")


class CommandsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    commands: list[StrictStr] = Field(min_length=1, max_length=100)


def json_body(request: Request) -> Any:
    """The parsed JSON body; 400 when it is missing or not JSON."""
    if not request.body:
        raise ApiError(400, "The request body is missing; send a JSON object.")
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deeply nested JSON
        raise ApiError(400, "The request body is not valid JSON.") from None


def parse(model: type[BaseModel], data: Any) -> BaseModel:
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ApiError(400, f"The request body is not valid: {problems}") from None
