"""The Docker runtime: one container per server through the blocking `docker` SDK, with a bounded
number of threads (see `runtime`). `spec` maps a definition to Docker's create call, `handle` is
one running container, `watcher` the single events stream that reports exits. The daemon holds
`on_demand`'s stand-in, which loads all of this when a server first needs Docker.

May import: `engine.environments.base`, `engine.servers.definition`, `engine.signals`,
`engine.console.lines` (the attach stream cut into console lines), `engine.config_docker`.
"""
