"""Which definitions of the config file's `servers:` list the daemon records, parsed a few at a time.

The rule has not changed: an invalid definition is logged and skipped; a server defined twice is
recorded once, at the place of its first valid definition, with its last valid one (and a warning).
What changed is how much is held at once: parsing all 10,000 definitions of a big node before
recording any held some 60 MiB of parsed models at boot's peak, and a peak that size leaves the
heap fragmented for the daemon's whole life. Here a definition is parsed when it is about to be
recorded, so only the caller's batch is alive.

To know whether a server is defined again further down without parsing everything first, each
document's `settings.uuid` is read as the parser will read it (engine.servers.definition
normalises it with `uuid.UUID`); only the documents of a server defined more than once are parsed
ahead, when the first of them comes up.
"""

from __future__ import annotations

import uuid as uuidlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import structlog

from wingman.engine.servers.definition import InvalidDefinition, ServerConfig, parse_definition

log = structlog.get_logger("wingman.daemon")  # the boot messages they always were


def latest_definitions(docs: Sequence[Any]) -> Iterator[ServerConfig]:
    """Each server's last valid definition, in the order of its first valid one."""
    later: dict[str, list[int]] = defaultdict(list)  # server -> indexes of its second, third... document
    seen_keys: set[str] = set()
    for i, doc in enumerate(docs):
        key = uuid_key(doc)
        if key is not None:
            if key in seen_keys:
                later[key].append(i)
            seen_keys.add(key)
    del seen_keys
    consumed: set[int] = set()  # documents already parsed ahead with an earlier one of their server
    for i, doc in enumerate(docs):
        if i in consumed:
            continue
        cfg = _parse(doc)
        if cfg is None:
            continue
        for j in later.pop(cfg.uuid, ()):
            if j <= i:
                continue
            again = _parse(docs[j])
            consumed.add(j)
            if again is None:
                continue
            log.warning("a server is defined twice in the config file; the last definition counts", server=cfg.uuid)
            cfg = again
        yield cfg


def uuid_key(doc: Any) -> str | None:
    """`settings.uuid` as parse_definition will normalise it, or None when it is not readable as
    one (that document then fails to parse: the parser takes text or UTF-8 bytes, as here)."""
    settings = doc.get("settings") if isinstance(doc, dict) else None
    value = settings.get("uuid") if isinstance(settings, dict) else None
    if isinstance(value, (bytes, bytearray)):  # pydantic reads bytes as UTF-8 text
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        return None


def _parse(doc: Any) -> ServerConfig | None:
    try:
        return parse_definition(doc)
    except InvalidDefinition as exc:
        log.error("invalid server in the config file; skipped", problem=str(exc))
        return None
