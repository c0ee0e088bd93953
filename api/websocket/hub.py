"""What every socket of the app shares: the node (engine.node), the websocket settings, the token checker, the
count of open sockets per server and the turns of authentications. One per app, made when the
server starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from wingman.api.websocket import frames
from wingman.api.websocket.admission import Admissions
from wingman.api.websocket.limits import SocketCount
from wingman.api.websocket.tokens import TokenChecker
from wingman.engine.config import WebsocketConfig
from wingman.engine.node import Node


@dataclass
class SocketHub:
    node: Node
    settings: WebsocketConfig
    checker: TokenChecker
    count: SocketCount
    sessions: set = field(default_factory=set)  # the open sessions (for the benchmark and tests)
    slow_readers_dropped: int = 0  # sockets closed because their client read too slowly (metrics)
    admissions: Admissions = field(default_factory=Admissions)  # `auth` frames take turns
    # A state change's `status` frame, encoded once for every socket of its server, the state as a
    # Panel knows it (the statechart's `panel_status`).
    status_frame: frames.SharedFrame | None = None

    def __post_init__(self) -> None:
        node = self.node  # its chart asked at each change: the chart in force is adopted at start
        self.status_frame = frames.SharedFrame(
            lambda ev: frames.encode(frames.STATUS, node.chart.panel_status(ev.data["to_state"]))
        )

    @classmethod
    def for_node(cls, node: Node) -> SocketHub:
        settings = node.config.websocket
        checker = TokenChecker(node.config.token, node.started_at, node.token_denied_at)
        return cls(node=node, settings=settings, checker=checker, count=SocketCount(settings.max_sockets_per_server))
