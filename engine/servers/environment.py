"""The variables a server's process or container gets, as Wings gives them
(server/server.go GetEnvironmentVariables): its own definition's `environment`, beside five that
the node sets and the definition cannot override."""

from __future__ import annotations

from wingman.engine.servers.definition import ServerConfig


def server_environment(config: ServerConfig, timezone: str) -> dict[str, str]:
    """`TZ`, `STARTUP` (the invocation, its `{{VARIABLES}}` left for a yolk's entrypoint to
    expand), `SERVER_MEMORY` (MiB), `SERVER_IP` and `SERVER_PORT` (the default allocation, when
    the definition has allocations), then the definition's variables, then `P_SERVER_UUID` unless
    the Panel sent its own.

    Names are kept as written (Wings upper-cases them; a Panel's egg variables already are)."""
    env = {"TZ": timezone, "STARTUP": config.invocation, "SERVER_MEMORY": str(config.memory_limit)}
    if config.definition.get("settings", {}).get("allocations") is not None:
        env["SERVER_IP"] = config.allocations.default.ip
        env["SERVER_PORT"] = str(config.allocations.default.port)
    for name, value in config.environment.items():
        env.setdefault(name, value)
    env.setdefault("P_SERVER_UUID", config.uuid)
    return env
