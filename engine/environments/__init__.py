"""Where a server runs. Each runtime implements the protocol in `base` (local processes in
`process`, Docker containers in `docker/`); the engine sees only that protocol.

May import: `engine.servers.definition` (a server's configuration), `engine.signals`.
"""
