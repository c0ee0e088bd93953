"""Where a server runs. Each runtime implements the protocol in `base` (local processes in
`local/`, Docker containers in `docker/`, each a `runtime` and its `handle`); the engine sees only
that protocol. Beside them, what both use: `server_users` (the user each server runs as) and
`install_runner` (the protocol of what runs an install script).

May import: `engine.servers.definition` (a server's configuration), `engine.signals`,
`engine.console.lines` (each runtime cuts its servers' output into console lines), `engine.config_docker`
(the daemon's Docker keys); never `engine.power` (checked: pyproject's [tool.importlinter]).
"""
