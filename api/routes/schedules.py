"""A server's scheduled power actions (engine.schedules): list, set, remove. Each change is an
event on the server's stream; a schedule that does not validate is a 422 naming its field, and
writes nothing."""

from __future__ import annotations

import re

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json

from wingman.api.context import node
from wingman.api.errors import ApiError
from wingman.api.openapi.describe import Answer, Param, doc
from wingman.api.requests import json_body
from wingman.api.routes.common import metadata_for
from wingman.engine.schedules.model import SCHEDULE_ID, InvalidSchedule, Schedule, parse_schedule

bp = Blueprint("schedules")
LIST = {"type": "object", "properties": {"schedules": {"type": "array", "items": {"type": "object"}}}}


@bp.get("/api/servers/<uuid:str>/schedules", ctx_read_only=True)
@doc(
    "A server's schedules",
    "Each as last set, with where it came from (`definition` or `api`), the last due time it answered and the next.",
    answers={200: Answer("The server's schedules", content={"application/json": LIST})},
)
async def list_schedules(request: Request, uuid: str) -> HTTPResponse:
    return json({"schedules": node(request).schedules.schedules(uuid)})


@bp.post("/api/servers/<uuid:str>/schedules")
@doc(
    "Add a schedule, or replace the one with its id",
    "A cron expression of five fields in `timezone` (IANA), an `action` (start, stop, restart, kill, or "
    "`command` with its `command`) or `steps` (a chain: each step waits for the previous one's outcome and runs "
    "only when it succeeded), `conditions` (`only_in_states`, `not_within_minutes_of_operator`), `missed` "
    "(`skip` or `run_once`: the runs due while the daemon was down) and `skip_next`. Recorded as "
    "`schedule.added`. A schedule that does not validate is a 422 whose `field` names where, and nothing is "
    "recorded.",
    body=Schedule,
    errors=(400, 422, 503),
    answers={201: Answer("The schedule as recorded", content={"application/json": {"type": "object"}})},
)
async def add_schedule(request: Request, uuid: str) -> HTTPResponse:
    the_node = node(request)
    the_node.server(uuid)  # 404 before the body is looked at
    body = json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        schedule = parse_schedule(body, frozenset(the_node.chart.states))
    except InvalidSchedule as exc:
        return json({"error": f"The schedule is not valid: {exc}", "field": exc.field}, status=422)
    return json(await the_node.schedules.add(uuid, schedule, metadata_for(request)), status=201)


@bp.delete("/api/servers/<uuid:str>/schedules")
@doc(
    "Remove a schedule",
    "Recorded as `schedule.removed`. A run at work goes on to its outcome. A schedule from the server's "
    "definition comes back when the definition is next recorded with it. Removing a schedule the server does "
    "not have, or of a deleted server, is a 204 too (nothing to remove, nothing recorded); an `id` that is not "
    "one is a 422.",
    params=[Param("id", {"type": "string", "pattern": SCHEDULE_ID}, "The schedule's id.", required=True)],
    errors=(422,),
    answers={204: Answer("Removed, or there was no such schedule")},
)
async def remove_schedule(request: Request, uuid: str) -> HTTPResponse:
    the_node = node(request)
    deleted = uuid not in the_node.servers() and await the_node.stream_exists(uuid)
    if not deleted:
        the_node.server(uuid)  # 404 for a server the node never had
    schedule_id = request.args.get("id") or ""
    if not re.fullmatch(SCHEDULE_ID, schedule_id):
        return json({"error": "The query's `id` is not a schedule id.", "field": "id"}, status=422)
    if not deleted:  # a deleted server has no schedules left: nothing to remove
        await the_node.schedules.remove(uuid, schedule_id, metadata_for(request))
    return empty(status=204)
