"""Websocket tokens the Panel revoked, as the log says.

The Panel calls `POST /api/servers/{uuid}/ws/deny {"jtis": [...]}` when a user's access to a
server changes; from then on, a websocket token with one of those `jti`s issued up to that moment
is refused (Wings' semantics: the Panel's `jti` is a hash of user and server, so this revokes every
token it has handed that user for that server, while the tokens it issues later work).

The request is recorded as a `server.websocket_tokens_denied` event, and the denylist is a
projection of those events, fed by their commits: there is no second place it is written. It holds
only the denials of this run of the daemon, which is all it needs: a token issued before the daemon
started is refused anyway (see api/websocket/tokens.py).
"""

from __future__ import annotations

from collections.abc import Callable

from wingman.engine.events import Metadata, NewEvent, RecordedEvent, WebsocketTokensDenied
from wingman.engine.live.feed import EventFeed
from wingman.engine.store.event_store import EventStore


class TokenDenylist:
    def __init__(self, store: EventStore, feed: EventFeed):
        self._store = store
        self._feed = feed
        self._denied: dict[str, float] = {}  # jti -> epoch seconds of the latest denial
        self._stop: Callable[[], None] | None = None

    def start(self) -> None:
        self._stop = self._feed.listen(self._on_event)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    def _on_event(self, ev: RecordedEvent) -> None:
        if ev.type != WebsocketTokensDenied.type:
            return
        at = ev.recorded_at.timestamp()
        for jti in ev.data.get("jtis", ()):
            self._denied[jti] = max(self._denied.get(jti, 0.0), at)

    def denied_at(self, jti: str | None) -> float | None:
        """When tokens with this jti were last denied (epoch seconds), or None."""
        return self._denied.get(jti) if jti else None

    async def deny(self, uuid: str, jtis: list[str], meta: Metadata) -> None:
        """Record the denial; it is in force once this returns (the commit fed the projection)."""
        await self._store.append(uuid, [NewEvent.of(WebsocketTokensDenied(jtis=jtis), meta)])
