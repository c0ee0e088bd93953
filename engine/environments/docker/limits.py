"""A server's `build` as Docker resources, as Wings maps it (environment/settings.go
AsContainerResources; server/install.go resourceLimits for an install container).

- memory: `memory_limit` MB (Wings counts 1,000,000 bytes) times the node's overhead multiplier
  (docker.overhead), so a JVM that overshoots its -Xmx a little is not OOM-killed; the limit
  itself is the reservation;
- swap: `swap` MB more than that; -1 unlimited; (with no memory limit there is nothing to add to);
- cpu: `cpu_limit` percent of one core as a CFS quota over a 100 ms period, and Docker's default
  share; nothing when 0 (Java reads the quota to size its pools: panel#3988);
- `threads`: the CPUs it may run on; `io_weight`: the block I/O weight; `oom_disabled`;
- pids: the server's own `pids_limit`, else the node's docker.container_pid_limit (wingman lets a
  server ask for fewer; Wings has only the node's)."""
from __future__ import annotations

from typing import Any

from engine.config_docker import DockerConfig
from engine.servers.definition import ServerConfig

MB = 1_000_000
CPU_PERIOD_US = 100_000


def bounded_memory(memory_mb: int, docker: DockerConfig) -> int:
    """Bytes: the hard memory limit of a server given `memory_mb`, with the node's overhead."""
    return round(memory_mb * docker.overhead.multiplier(memory_mb) * MB)


def container_resources(cfg: ServerConfig, docker: DockerConfig, *, memory_mb: int | None = None,
                        cpu_limit: int | None = None, pids: bool = True) -> dict[str, Any]:
    """Keyword arguments for `APIClient.create_host_config`. `memory_mb`/`cpu_limit` replace the
    server's own (an install container's); `pids=False` leaves the count unlimited (Wings' installer)."""
    memory = cfg.memory_limit if memory_mb is None else memory_mb
    cpu = cfg.cpu_limit if cpu_limit is None else cpu_limit
    out: dict[str, Any] = {"blkio_weight": cfg.io_weight, "oom_kill_disable": cfg.oom_disabled}
    if memory > 0:
        hard = bounded_memory(memory, docker)
        out["mem_limit"] = hard
        out["mem_reservation"] = memory * MB
        out["memswap_limit"] = -1 if cfg.swap < 0 else cfg.swap * MB + hard
    if cpu > 0:
        out["cpu_quota"] = cpu * 1_000
        out["cpu_period"] = CPU_PERIOD_US
        out["cpu_shares"] = 1024
    if cfg.threads:
        out["cpuset_cpus"] = cfg.threads
    if pids:
        out["pids_limit"] = cfg.pids_limit if cfg.pids_limit > 0 else docker.container_pid_limit
    return out


def installer_resources(cfg: ServerConfig, docker: DockerConfig) -> dict[str, Any]:
    """An install container's: at least docker.installer_limits, the server's own when larger;
    an installer cpu of 0 lifts the CPU limit; no pids limit (package managers fork a lot)."""
    least = docker.installer_limits
    memory = max(cfg.memory_limit, least.memory)  # an unlimited server (0) installs within the least, as in Wings
    if least.cpu == 0:
        cpu = 0
    elif cfg.cpu_limit != 0 and cfg.cpu_limit < least.cpu:
        cpu = least.cpu
    else:
        cpu = cfg.cpu_limit
    return container_resources(cfg, docker, memory_mb=memory, cpu_limit=cpu, pids=False)
