"""The domain of the daemon: servers, their power lifecycle, the event store and the audit.

It knows nothing of HTTP: `api/` calls in, nothing here imports `api/`. The packages, from the
bottom up (each may import only those listed before it, plus the vocabulary modules
`events` (with `install_events`), `signals`, `statechart` and `config` (with `config_servers`, how it holds the
servers list) at this level):

- `store/`         the append-only event store and its database; the RFC 9162 tree and the
                   signed checkpoint format that the two packages below share
- `checkpoints/`   the daemon's signing side: the tree kept from commits, signed checkpoints,
                   the key and its rotation
- `servers/`       a server's state folded from its events; definitions; the live registry;
                   replay and its snapshots (caches of the log)
- `console/`       a server's console lines, whatever runs it: cut and throttled, the buffer of
                   recent lines and its listeners, the done-lines that say a server is ready
- `environments/`  where a server runs: the runtime protocol, local processes (`local/`), Docker
- `preboot/`       what a start does before anything runs
- `power/`         power operations, locks, processes (and which console is whose), boot recovery
- `install/`       an egg's install script as an operation under the power lock (`installing`)
- `audit/`         the auditor's tools, built on the store and the fold
- `live/`          live state for watchers: the commit feed, following the log, the websocket
                   token denylist, utilization sampling (built on store, servers and power)
- `heap`           the process's heap once booted: memory handed back, the rest out of the
                   collector's walks (the daemon's, and the replay benchmark's)
- `daemon`         assembles all of the above from the config
"""
