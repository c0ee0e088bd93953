"""The connection protocol the app is served with: Sanic's own, minus what it keeps of a closed
websocket.

Sanic 25.12's `WebSocketProtocol` (Sanic's protocol for every connection of an app that has a
websocket route) leaves timers in the event loop when an upgraded connection ends, and each timer
holds the connection's objects: the protocol, its `Request` (through the timer's context), the
websockets `ServerProtocol`, uvloop's `TCPTransport`, some 17-20 KB. Under a Panel whose users
reconnect all day, thousands of closed connections were alive at once, and the heap they grew
stayed grown.

- `HttpProtocol.check_timeouts` re-arms itself every `min(timeouts) / 2` (30 s with Sanic's
  defaults) and `HttpProtocol.close` cancels it, but `WebSocketProtocol.close` skips
  `HttpProtocol.close` once the connection was upgraded: the last armed check outlives the
  connection by up to 30 s.
- `WebsocketImplProtocol._force_disconnect` (sanic/server/websockets/impl.py) schedules
  `transport.abort` `close_timeout` (10 s) later and never cancels it, even when the connection
  is already lost. Sanic calls it for every connection the client closed: the lost connection
  cancels the handler, and `Sanic._websocket_handler` then calls `end_connection`, as
  `WebSocketProtocol.close` does once more.

Here a lost websocket connection cancels its timeout check and lets go of its transport, as
Sanic's own `_async_protocol_transport_close` does for a plain HTTP connection: the websocket
layer schedules no abort for a protocol without a transport (each of its uses is guarded).
"""

from __future__ import annotations

from sanic.exceptions import RequestCancelled
from sanic.server.protocols.websocket_protocol import WebSocketProtocol


class SocketProtocol(WebSocketProtocol):
    __slots__ = ()

    def connection_lost(self, exc):
        super().connection_lost(exc)
        if self.websocket is None:  # plain HTTP: Sanic's close path lets go of it
            return
        if self._callback_check_timeouts is not None:
            self._callback_check_timeouts.cancel()
            self._callback_check_timeouts = None
        self.transport = None

    async def send(self, data):
        # A send that waited for the client to read (paused writing) wakes after the connection
        # was lost: it fails as Sanic's own send fails on a closing transport.
        await self._can_write.wait()
        if self.transport is None:
            raise RequestCancelled
        await super().send(data)
