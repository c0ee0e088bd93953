"""Live state: what the daemon tells watchers as it happens, always derived from the log or measured
from the running processes, never a second record of the truth.

- `feed`: committed events fanned out from the store's one subscription to many consumers, each
  with its own bound (a listener that must not block, or a bounded queue a consumer drains).
- `denylist`: the websocket tokens the Panel revoked, a projection of
  `server.websocket_tokens_denied` events.
- `sampling`: one reading of a server's processes (psutil: memory, CPU time, network, start time).
- `utilization`: the background sampler of running servers and the utilization document Wings
  reports (`GET /api/servers/{uuid}`, websocket `stats`).
- `disk`: the size of each server's folder, measured in the background.

May import: `engine.store`, `engine.servers`, `engine.power`, `engine.environments.base`,
`engine.events`, `engine.event_types`, `engine.config`, `engine.statechart` (checked: pyproject's
[tool.importlinter]). Nothing in the engine below `daemon` imports this package.
"""
