"""The events of a node under a Panel (engine.remote): its inventory of the Panel's servers, the
servers it refused or that the Panel stopped listing, and what it told the Panel of an install.
Registered with engine.events' `event_class`, which imports this module."""

from __future__ import annotations

import hashlib

from pydantic import Field

from wingman.engine.event_types import EventType
from wingman.engine.events import Event, event

# Node-wide facts (the Panel's inventory) go to the node's own stream (`node_stream`): it is no
# server's, and the registry does not fold it into one. A server's stream id is its normalised
# UUID, which these never are. NODE_STREAM is the one stream of a node without a node id, and where
# every node wrote before each had its own (docs/fleet.md): its history stays as it was.
NODE_STREAM = "node"
_STREAM_ID_MAX = 64  # events.stream_id


def node_stream(node_id: str | None) -> str:
    """The stream of this node's own facts: `node:<node id>` (a node id too long for a stream id
    is replaced by 32 hex digits of its SHA-256), so that nodes on one database never share one."""
    if node_id is None:
        return NODE_STREAM
    name = f"{NODE_STREAM}:{node_id}"
    return name if len(name) <= _STREAM_ID_MAX else f"{NODE_STREAM}:{hashlib.sha256(node_id.encode()).hexdigest()[:32]}"


def is_node_stream(stream_id: str) -> bool:
    """A stream of node-wide facts (any node's), not a server's."""
    return stream_id == NODE_STREAM or stream_id.startswith(NODE_STREAM + ":")


@event(EventType.INVENTORY_FAILED)
class InventoryFailed(Event):
    """An inventory of the Panel's servers could not be taken (on NODE_STREAM). The node goes on
    with the definitions it last recorded; the inventory is tried again after `retry_in_seconds`.
    Recorded for the first failure and whenever the reason changes, not for every retry."""

    attempt: int = Field(ge=1)
    reason: str
    retry_in_seconds: float
    servers_recorded: int  # the servers the node goes on with meanwhile


@event(EventType.INVENTORY_RECONCILED)
class InventoryReconciled(Event):
    """The Panel listed its servers for this node and the node now holds them (on NODE_STREAM)."""

    attempts: int = Field(ge=1)
    pages: int
    listed: int
    registered: int
    updated: int
    unchanged: int
    removed: int
    removal_pending: int  # running servers it no longer lists: removed once they stop
    refused: int  # entries the node could not take (see panel.server_refused)
    reset_error: str | None = None  # why POST /api/remote/servers/reset failed, when it did


@event(EventType.PANEL_SERVER_REFUSED)
class PanelServerRefused(Event):
    """A server the Panel sent that the node cannot take (on NODE_STREAM): no uuid, a uuid that is
    not one, a definition without `settings`, an invalid one. Nothing else changed."""

    uuid: str | None = Field(default=None, max_length=200)  # as the Panel sent it (cut short)
    reason: str
    source: str  # inventory | create | sync


@event(EventType.PANEL_SERVER_UNLISTED)
class PanelServerUnlisted(Event):
    """The Panel no longer lists this server but it is not offline: it is not stopped behind
    anyone's back. It stays manageable, and is removed once an inventory finds it offline."""

    state: str


@event(EventType.INSTALL_REPORTED)
class InstallReported(Event):
    """What the node told the Panel of a server's installation (POST .../install)."""

    successful: bool
    reason: str | None = None  # why it failed
    reported: bool  # the Panel took the report
    report_error: str | None = None
    reinstall: bool = False  # what the Panel was told, with `successful`
    install_id: str | None = None  # the install reported (engine.install_events), when one ran
