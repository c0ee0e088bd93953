"""The Panel's list of this node's servers, page by page, as Wings takes it at boot
(`remote/servers.go` GetServers): `GET /api/remote/servers?page=0&per_page=M` first (Laravel
reads page 0 as page 1), then the pages after `meta.current_page` up to `meta.last_page`, a few
at a time.

The whole list is read and checked before anything is done with it: a page that is not JSON, not
shaped as a page, or a `last_page` beyond what a node can hold fails the listing as a whole
(`ListingFailed`), so a bad answer halfway never leaves the node half reconciled. A bad entry
(no uuid, a uuid that is not one, no `settings`) fails only itself: it is kept as refused.

Each entry is held as its definition's compact JSON, not as parsed objects: 10,000 definitions
as dicts hold some 60 MiB, and a peak that size fragments the heap for the daemon's life (see
engine.servers.from_config)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from wingman.engine.remote.client import PanelClient, PanelError
from wingman.engine.remote.documents import BadPanelDocument, definition_from, server_uuid

SERVERS_PATH = "/api/remote/servers"
PAGES_AT_ONCE = 4  # Wings asks for every page at once; a few at a time is as quick and kinder to a Panel


class ListingFailed(Exception):
    """The Panel's list could not be read (unreachable, refused, or a page that is not a page)."""

    def __init__(self, reason: str, unreachable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable


@dataclass
class Listing:
    # Every server the Panel listed: its definition as compact JSON, or None when the entry was
    # refused (the server is listed, so not removed, but its recorded definition stays).
    servers: dict[str, bytes | None] = field(default_factory=dict)
    refused: list[BadPanelDocument] = field(default_factory=list)
    pages: int = 0


async def list_servers(client: PanelClient, per_page: int, max_servers: int) -> Listing:
    """Every server the Panel lists for this node; at most `max_servers` (more is refused: a node
    cannot hold them, and a `last_page` of 10^9 would otherwise be a billion requests)."""
    max_pages = max(1, math.ceil(max_servers / per_page))
    listing = Listing()
    first = await _page(client, 0, per_page)
    current, last = _meta(first, max_pages, per_page)
    _take(listing, first, per_page)
    pages = list(range(current + 1, last + 1))
    for i in range(0, len(pages), PAGES_AT_ONCE):
        for body in await asyncio.gather(*(_page(client, p, per_page) for p in pages[i : i + PAGES_AT_ONCE])):
            _meta(body, max_pages, per_page)
            _take(listing, body, per_page)
        if len(listing.servers) > max_servers:
            raise ListingFailed(
                f"the Panel lists more than {max_servers} servers for this node, more than it can "
                "hold (system.server_users.count)"
            )
    listing.pages = 1 + len(pages)
    return listing


async def _page(client: PanelClient, page: int, per_page: int) -> dict[str, Any]:
    try:
        body = await client.get_json(SERVERS_PATH, {"page": page, "per_page": per_page})
    except PanelError as exc:
        raise ListingFailed(f"page {page} of the server list: {exc}", exc.unreachable) from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list) or not isinstance(body.get("meta"), dict):
        raise ListingFailed(f"page {page} of the server list is not a page: it needs `data` (a list) and `meta`")
    return body


def _meta(body: dict[str, Any], max_pages: int, per_page: int) -> tuple[int, int]:
    meta = body["meta"]
    current, last = meta.get("current_page"), meta.get("last_page")
    for name, value in (("current_page", current), ("last_page", last)):
        if type(value) is not int or value < 1:
            raise ListingFailed(f"the server list's meta.{name} is {value!r}, not a page number")
    if last > max_pages:
        raise ListingFailed(
            f"the server list's meta.last_page is {last}: more than {max_pages} pages of {per_page} "
            "is more servers than this node can hold (system.server_users.count)"
        )
    if current > last:
        raise ListingFailed(f"the server list's meta.current_page {current} is past its last_page {last}")
    if len(body["data"]) > per_page:
        raise ListingFailed(
            f"page {current} of the server list holds {len(body['data'])} servers, more than the {per_page} asked for"
        )
    return current, last


def _take(listing: Listing, body: dict[str, Any], per_page: int) -> None:
    for entry in body["data"]:
        try:
            uuid = server_uuid(entry.get("uuid") if isinstance(entry, dict) else None)
        except BadPanelDocument as exc:
            listing.refused.append(exc)
            continue
        try:
            listing.servers[uuid] = orjson.dumps(definition_from(entry, uuid))
        except BadPanelDocument as exc:
            listing.servers.setdefault(uuid, None)
            listing.refused.append(exc)
        except (TypeError, orjson.JSONEncodeError) as exc:  # e.g. an integer beyond 64 bits
            listing.servers.setdefault(uuid, None)
            listing.refused.append(BadPanelDocument(f"the server's definition cannot be kept: {exc}", uuid))
