"""What the Panel sends about one server, checked before anything is done with it: a listing
entry (`GET /api/remote/servers`: `uuid`, `settings`, `process_configuration`) or a server's
document (`GET /api/remote/servers/{uuid}`: `settings`, `process_configuration`).

A Panel is trusted with what it says, not with its shape: an entry without a uuid, with one that
is not a UUID, or without `settings` is refused here with a reason a log line can carry, before
it reaches the registry (which then parses the definition itself: engine.servers.definition)."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

SHOWN_CHARS = 100  # of a bad uuid, in a log line or an event


class BadPanelDocument(ValueError):
    """The Panel sent something about a server that the node cannot take; `uuid` is the server's
    when the document said which one it is about (normalised), else what it said (cut short)."""

    def __init__(self, reason: str, uuid: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.uuid = uuid


def server_uuid(value: object) -> str:
    """`value` as a server's UUID (normalised as the registry spells it); BadPanelDocument if it is not one."""
    if not isinstance(value, str):
        raise BadPanelDocument(
            f"the server's uuid is {type(value).__name__}, not a UUID text",
            None if value is None else str(value)[:SHOWN_CHARS],
        )
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        raise BadPanelDocument(
            f"the server's uuid {value[:SHOWN_CHARS]!r} is not a UUID", value[:SHOWN_CHARS]
        ) from None


def definition_from(doc: object, uuid: str) -> dict[str, Any]:
    """The definition in a Panel's document about server `uuid` (already normalised): its
    `settings` (whose own uuid, when given, must be that one) and `process_configuration`."""
    if not isinstance(doc, dict):
        raise BadPanelDocument(f"the Panel's document about the server is {type(doc).__name__}, not an object", uuid)
    settings = doc.get("settings")
    if not isinstance(settings, dict):
        raise BadPanelDocument("the Panel's document about the server has no `settings` object", uuid)
    own = settings.get("uuid")
    if own is None:
        settings = {**settings, "uuid": uuid}
    elif server_uuid(own) != uuid:
        raise BadPanelDocument(f"the Panel's document about server {uuid} has the settings of {own}", uuid)
    process = doc.get("process_configuration")
    if process is None:
        process = {}
    if not isinstance(process, dict):
        raise BadPanelDocument("the Panel's `process_configuration` is not an object", uuid)
    return {"settings": settings, "process_configuration": process}


def with_runtime(definition: dict[str, Any], runtime: str) -> dict[str, Any]:
    """The definition with `settings.runtime` set to the node's `remote_runtime` when the Panel named
    none (a Panel's servers are Docker images, as under Wings; wingman's own key is never sent by it)."""
    settings = definition.get("settings")
    if not isinstance(settings, dict) or "runtime" in settings:
        return definition
    return {**definition, "settings": {**settings, "runtime": runtime}}
