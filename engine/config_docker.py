"""The node's `docker:` section, with Wings' names and defaults (pterodactyl/wings
config/config_docker.go), and wingman's few keys beside them.

Every key here is applied to every container of the node (engine.environments.docker): the
network it joins, the registries it is pulled from, the memory overhead, the log driver, /tmp.
A server's own limits come from its definition's `build` (engine.servers.definition)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NetworkInterface(_Section):
    subnet: str
    gateway: str


def _v4() -> NetworkInterface:
    return NetworkInterface(subnet="172.18.0.0/16", gateway="172.18.0.1")


def _v6() -> NetworkInterface:
    return NetworkInterface(subnet="fdba:17c8:6c94::/64", gateway="fdba:17c8:6c94::1011")


class NetworkInterfaces(_Section):
    v4: NetworkInterface = Field(default_factory=_v4)
    v6: NetworkInterface = Field(default_factory=_v6)


class DockerNetwork(_Section):
    """Wings' `docker.network`: the bridge every server's container joins, created when missing."""

    interface: str = "172.18.0.1"  # the host's address on the bridge; SERVER_IP 127.0.0.1 becomes it
    dns: list[str] = Field(default_factory=lambda: ["1.1.1.1", "1.0.0.1"])
    name: str = Field(default="pterodactyl_nw", min_length=1, max_length=128)
    ispn: bool = False  # an allocation on 127.0.0.1 is dropped rather than moved to `interface`
    driver: str = "bridge"
    # The network containers join: `name` (the default), or Docker's `host` or `none`, or another
    # network of the engine's. `none` keeps every server off the network, allocations unpublished.
    network_mode: str = Field(default="pterodactyl_nw", min_length=1)
    is_internal: bool = False
    enable_icc: bool = True
    network_mtu: int = Field(default=1500, ge=68, le=65535)
    interfaces: NetworkInterfaces = Field(default_factory=NetworkInterfaces)


class Registry(_Section):
    """Credentials for images whose name starts with this entry's key (Wings' prefix match)."""

    username: str
    password: str


class InstallerLimits(_Section):
    """The least an install container gets; a server's own larger limits win (Wings' rule)."""

    memory: int = Field(default=1024, ge=0)  # MB
    cpu: int = Field(default=100, ge=0)  # percent of one core; 0: no limit


class Overhead(_Section):
    """Memory given above a server's `memory_limit` so a JVM that overshoots is not OOM-killed."""

    override: bool = False  # false: Wings' built-in steps (15 % up to 2048 MB, 10 % to 4096, else 5 %)
    default_multiplier: float = Field(default=1.05, ge=1, le=10)
    multipliers: dict[int, float] = Field(default_factory=dict)  # MB limit -> multiplier, when override

    def multiplier(self, memory_mb: int) -> float:
        if not self.override:
            return 1.15 if memory_mb <= 2048 else 1.10 if memory_mb <= 4096 else 1.05
        for bound in sorted(self.multipliers):
            if memory_mb <= bound:
                return self.multipliers[bound]
        return self.default_multiplier


def _log_config() -> dict[str, str]:
    return {"max-size": "5m", "max-file": "1", "compress": "false", "mode": "non-blocking"}


class LogConfig(_Section):
    """The containers' log driver. Wings' default keeps at most 5 MB of output per container."""

    type: str = "local"  # "" leaves the engine's own default
    config: dict[str, str] = Field(default_factory=_log_config)


class DockerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str | None = None  # wingman: e.g. unix:///var/run/docker.sock; default: DOCKER_HOST or the socket
    network: DockerNetwork = Field(default_factory=DockerNetwork)
    domainname: str = ""
    registries: dict[str, Registry] = Field(default_factory=dict)
    tmpfs_size: int = Field(default=100, ge=1, le=1024 * 1024)  # MiB of /tmp in a container (its root is read-only)
    container_pid_limit: int = Field(default=512, ge=1, le=4_194_304)  # processes in a container
    installer_limits: InstallerLimits = Field(default_factory=InstallerLimits)
    overhead: Overhead = Field(default_factory=Overhead)
    use_performant_inspect: bool = True  # Wings' choice of inspect call; wingman's is already light
    userns_mode: str = ""  # "host" turns off the engine's user-namespace remapping for servers
    log_config: LogConfig = Field(default_factory=LogConfig)
    # wingman: the network mode of earlier wingman configs; when set it wins over network.network_mode.
    network_mode: str | None = None
    # wingman: how long one image pull may take (Wings: 15 minutes) before the start fails.
    image_pull_timeout: float = Field(default=900, gt=0, le=86_400)

    @field_validator("registries")
    @classmethod
    def _prefixes(cls, v: dict[str, Registry]) -> dict[str, Registry]:
        if any(not prefix for prefix in v):
            raise ValueError("a registry's key is the image name prefix it is for; it cannot be empty")
        return v

    @property
    def mode(self) -> str:
        """The network containers join."""
        return self.network_mode or self.network.network_mode

    def registry_for(self, image: str) -> Registry | None:
        """The credentials of the first registry whose prefix the image's name starts with."""
        for prefix, registry in self.registries.items():
            if image.startswith(prefix):
                return registry
        return None
