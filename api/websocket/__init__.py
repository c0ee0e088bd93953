"""The Wings websocket at `GET /api/servers/{uuid}/ws`: what a Pterodactyl or Pelican Panel reads
a server's state, console and resources through.

- `frames`: the JSON frames (`{"event": ..., "args": [...]}`) and the event names.
- `origin`: which browser Origins may open a socket (`remote` and `allowed_origins`).
- `tokens`: the JWT the Panel signs with the node token, checked with Wings' error texts.
- `permissions`: what each permission in the token lets the socket do.
- `limits`: per-socket rate limits (token buckets) and the count of sockets per server.
- `outbox`: one socket's bounded queue of outbound frames and the task that writes them.
- `session`: one connection: authentication, what it follows, what it answers.
- `inbound`: the handlers of `set state`, `send logs`, `send stats` and `send command`.
- `routes`: the blueprint (the socket and `POST /api/servers/{uuid}/ws/deny`).

Everything the socket says comes from the engine: `status` from committed `state.changed` events
(engine.live.feed), `stats` from engine.live.utilization, console lines from the process tracker.
"""
