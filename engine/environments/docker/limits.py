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

from collections.abc import Mapping

from wingman.engine.config_docker import DockerConfig
from wingman.engine.servers.definition import ServerConfig

MB = 1_000_000
CPU_PERIOD_US = 100_000


def bounded_memory(memory_mb: int, docker: DockerConfig) -> int:
    """Bytes: the hard memory limit of a server given `memory_mb`, with the node's overhead."""
    return round(memory_mb * docker.overhead.multiplier(memory_mb) * MB)


def container_resources(
    cfg: ServerConfig,
    docker: DockerConfig,
    *,
    memory_mb: int | None = None,
    cpu_limit: int | None = None,
    pids: bool = True,
) -> dict[str, object]:
    """Keyword arguments for `APIClient.create_host_config`. `memory_mb`/`cpu_limit` replace the
    server's own (an install container's); `pids=False` leaves the count unlimited (Wings' installer)."""
    memory = cfg.memory_limit if memory_mb is None else memory_mb
    cpu = cfg.cpu_limit if cpu_limit is None else cpu_limit
    out: dict[str, object] = {"blkio_weight": cfg.io_weight, "oom_kill_disable": cfg.oom_disabled}
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


# What each resource of `container_resources` is called in the container's HostConfig (where the
# engine says what it kept), and in the definition (what a warning names).
FIELDS = {
    "mem_limit": ("Memory", "memory_limit"),
    "mem_reservation": ("MemoryReservation", "memory_limit"),
    "memswap_limit": ("MemorySwap", "swap"),
    "cpu_quota": ("CpuQuota", "cpu_limit"),
    "cpu_period": ("CpuPeriod", "cpu_limit"),
    "cpu_shares": ("CpuShares", "cpu_limit"),
    "cpuset_cpus": ("CpusetCpus", "threads"),
    "blkio_weight": ("BlkioWeight", "io_weight"),
    "oom_kill_disable": ("OomKillDisable", "oom_disabled"),
    "pids_limit": ("PidsLimit", "pids_limit"),
}
# `docker info` flags that say the engine can apply a resource (absent from info: blkio weight).
ENGINE_CAN = {
    "mem_limit": "MemoryLimit",
    "memswap_limit": "SwapLimit",
    "cpu_quota": "CpuCfsQuota",
    "cpu_period": "CpuCfsPeriod",
    "cpu_shares": "CPUShares",
    "cpuset_cpus": "CPUSet",
    "oom_kill_disable": "OomKillDisable",
    "pids_limit": "PidsLimit",
}


def _asked(resources: dict[str, object]) -> list[str]:
    """The resources set to something (a False oom_kill_disable, a -1 swap ask nothing of the kernel)."""
    return [key for key, value in resources.items() if key in FIELDS and value not in (False, 0, -1, None)]


def unenforced(
    cfg: ServerConfig, resources: dict[str, object], info: Mapping[str, object], discarded: set[str]
) -> list[str]:
    """Pre-boot warnings: what the definition asks that this engine cannot apply, from `docker
    info`, and from what the engine `discarded` on an earlier create (blkio weight: info says
    nothing of it; Docker drops it, with a warning, where the kernel has no blkio/io weight)."""
    out: list[str] = []
    for key in _asked(resources):
        name = FIELDS[key][1]
        if key == "pids_limit" and cfg.pids_limit == 0:
            continue  # the node's own limit, not the definition's
        if info.get(ENGINE_CAN.get(key, "")) is False or key in discarded:
            warning = f"the Docker engine cannot apply {name} on this kernel; {name} is not enforced"
            if warning not in out:
                out.append(warning)
    if cfg.oom_disabled and cfg.memory_limit == 0:
        out.append("oom_disabled without a memory_limit: nothing stops the server from exhausting the host's memory")
    return out


def discarded(resources: dict[str, object], host_config: Mapping[str, object]) -> set[str]:
    """The resources asked for that a created container's HostConfig does not hold: the engine
    dropped them (it says so in the create's `Warnings`)."""
    return {key for key in _asked(resources) if host_config.get(FIELDS[key][0]) != resources[key]}


def installer_resources(cfg: ServerConfig, docker: DockerConfig) -> dict[str, object]:
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
