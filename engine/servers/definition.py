"""A server's configuration, read from the document a Pterodactyl Panel serves for it
(`settings` + `process_configuration`), with wingman's own keys beside Wings' ones.

The same document comes from the config file, from `POST /api/servers`, and from a Panel's
`GET /api/remote/servers/{uuid}`. Unknown keys are kept (Panels send many) but not interpreted.
"""

from __future__ import annotations

import ipaddress
import re
import uuid as uuidlib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.config import JsonDict

from wingman.engine.probes.spec import InvalidProbe, parse_probes
from wingman.engine.schedules.model import InvalidSchedule, parse_schedules
from wingman.engine.servers.definition_base import OpenModel
from wingman.engine.servers.process_configuration import ConfigFile, ProcessConfiguration

DEFAULT_STOP_TIMEOUT = 600.0
# Upper bounds that keep every limit representable where it is applied (RLIMIT_AS and Docker
# take bytes as 64-bit integers; the kernel has at most 2^22 pids): larger values are refused at
# the door instead of failing the launch.
MAX_MIB = 2**40
MAX_CPU_PERCENT = 100_000  # a thousand cores
MAX_PIDS = 4_194_304
CPUSET = r"^([0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*)?$"  # Docker's --cpuset-cpus; "" (a Panel's none) too
MAX_ENV_STRING = 131_072  # the kernel's limit on one NAME=value string passed to exec (MAX_ARG_STRLEN)


class Build(OpenModel):
    memory_limit: int = Field(default=0, ge=0, le=MAX_MIB, description="MiB; 0 = unlimited")
    swap: int = Field(default=0, ge=-1, le=MAX_MIB, description="MiB; docker only; 0 = same as memory")
    disk_space: int = Field(default=0, ge=0, le=MAX_MIB, description="MiB; 0 = unlimited")
    cpu_limit: int = Field(default=0, ge=0, le=MAX_CPU_PERCENT, description="percent of one core; 0 = unlimited")
    pids_limit: int = Field(default=0, ge=0, le=MAX_PIDS, description="0 = unlimited")
    io_weight: int = Field(default=500, ge=10, le=1000, description="docker only: the block I/O weight")
    threads: str | None = Field(
        default=None,
        description="docker only: the CPUs it may run on, as `0-1,3`",
        json_schema_extra={"pattern": CPUSET},
    )
    oom_disabled: bool = Field(default=False, description="docker only: the kernel's OOM killer spares it")

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(CPUSET, v):
            raise ValueError(f"build.threads {v[:40]!r} is not a CPU list like `0-1,3`")
        return v or None


class DefaultAllocation(OpenModel):
    ip: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)


class Allocations(OpenModel):
    """Wings' `allocations`: the addresses players dial. Under Docker, every port of `mappings` is
    published on its IP, TCP and UDP; `default` is SERVER_IP and SERVER_PORT."""

    force_outgoing_ip: bool = False
    default: DefaultAllocation = Field(default_factory=DefaultAllocation)
    mappings: dict[str, list[Annotated[int, Field(ge=1, le=65535)]]] = Field(
        default_factory=dict, json_schema_extra={"propertyNames": {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}}
    )

    @field_validator("mappings")
    @classmethod
    def _addresses(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        for ip in v:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ValueError(f"allocations.mappings: {ip[:60]!r} is not an IP address") from None
        return v


class Container(OpenModel):
    image: str | None = None


class Meta(OpenModel):
    name: str | None = None
    description: str | None = None


class RestartPolicy(OpenModel):
    """wingman: what happens after a crash, in the spirit of Docker's and systemd's policies.

    - `no`: never restart; `on-failure`: after a failed exit (a clean exit counts as one when the
      node's `crash_detection.detect_clean_exit_as_crash` says so, as in Wings); `always`: after
      any exit nobody asked for, and at daemon start even if an operator had stopped it;
      `unless-stopped`: like `always`, except a server an operator stopped stays stopped.
    - At most `max_restarts` in `window` seconds; the n-th waits `backoff_initial` * 2^(n-1)
      seconds, at most `backoff_max`; a server that ran for `reset_after` seconds starts afresh.
    """

    policy: Literal["no", "on-failure", "always", "unless-stopped"] = "on-failure"
    max_restarts: int = Field(default=5, ge=0, le=1000)
    window: float = Field(default=600, gt=0, le=7 * 86400)
    backoff_initial: float = Field(default=2, ge=0, le=3600)
    backoff_max: float = Field(default=300, ge=0, le=86400)
    reset_after: float = Field(default=600, ge=0, le=7 * 86400)


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
NO_NUL = r"^[^\x00]*$"
# The docker runtime needs an image: said in the schema too, so the OpenAPI document refuses what
# parse_definition refuses.
_DOCKER_NEEDS_AN_IMAGE: JsonDict = {
    "if": {"properties": {"runtime": {"const": "docker"}}, "required": ["runtime"]},
    "then": {
        "properties": {
            "container": {"properties": {"image": {"type": "string", "minLength": 1}}, "required": ["image"]}
        },
        "required": ["container"],
    },
}


class Settings(OpenModel):
    model_config = ConfigDict(json_schema_extra=_DOCKER_NEEDS_AN_IMAGE)

    uuid: str = Field(json_schema_extra={"format": "uuid"})
    meta: Meta = Field(default_factory=Meta)
    suspended: bool = False
    invocation: str = Field(default="", json_schema_extra={"pattern": NO_NUL})
    environment: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={
            "propertyNames": {"pattern": ENV_NAME},
            "additionalProperties": {
                "anyOf": [{"type": "string", "pattern": NO_NUL}, {"type": ["number", "boolean", "null"]}]
            },
        },
    )
    build: Build = Field(default_factory=Build)
    allocations: Allocations | None = None  # none: a server no player dials (a local test, a demo)
    container: Container = Field(default_factory=Container)
    runtime: Literal["process", "docker"] = "process"
    stop_timeout: float = Field(default=DEFAULT_STOP_TIMEOUT, gt=0, le=86400)
    crash_detection_enabled: bool | None = None  # Wings' per-server switch; None: the node's setting
    restart_policy: RestartPolicy = Field(default_factory=RestartPolicy)

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, v: str) -> str:
        try:
            return str(uuidlib.UUID(v))
        except (ValueError, AttributeError, TypeError):
            raise ValueError("settings.uuid must be a UUID") from None

    @field_validator("environment")
    @classmethod
    def _env(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, val in v.items():
            if not re.fullmatch(ENV_NAME, key):
                raise ValueError(f"environment variable name {key!r} is not valid")
            if isinstance(val, (dict, list)):
                raise ValueError(f"environment variable {key} must be a scalar")
            if isinstance(val, str) and "\0" in val:
                raise ValueError(f"environment variable {key} holds a NUL character")
            if len(key) + 1 + len(str(val).encode("utf-8", "surrogatepass")) >= MAX_ENV_STRING:
                raise ValueError(f"environment variable {key} is too long for the kernel (128 KiB at most)")
        return v

    @field_validator("invocation")
    @classmethod
    def _invocation(cls, v: str) -> str:
        if "\0" in v:
            raise ValueError("settings.invocation holds a NUL character")
        return v


class ServerDefinition(OpenModel):
    """The whole document. `settings.uuid` is the only required key."""

    settings: Settings
    process_configuration: ProcessConfiguration = Field(default_factory=ProcessConfiguration)


class ServerConfig(BaseModel):
    """The parts of a definition the engine acts on, flattened, plus the definition itself."""

    model_config = ConfigDict(frozen=True)

    uuid: str
    name: str
    invocation: str
    environment: dict[str, str]
    runtime: str
    image: str | None
    memory_limit: int
    swap: int
    disk_space: int
    cpu_limit: int
    pids_limit: int
    io_weight: int
    threads: str | None
    oom_disabled: bool
    allocations: Allocations
    stop_type: str
    stop_value: str | None
    stop_timeout: float
    done: tuple[str, ...]
    strip_ansi: bool
    suspended: bool
    crash_detection_enabled: bool | None
    restart_policy: RestartPolicy
    definition: dict[str, Any]

    @property
    def configs(self) -> list[ConfigFile]:
        return ServerDefinition.model_validate(self.definition).process_configuration.configs


class InvalidDefinition(ValueError):
    """A server definition that does not validate; the message lists every problem."""


def parse_definition(doc: Any) -> ServerConfig:
    if not isinstance(doc, dict):
        raise InvalidDefinition("a server definition must be a JSON object with a `settings` key")
    try:
        d = ServerDefinition.model_validate(doc)
    except ValidationError as exc:
        raise InvalidDefinition(_explain(exc)) from None
    s, p = d.settings, d.process_configuration
    if "schedules" in doc:  # wingman's key beside Wings' ones (engine.schedules); kept as given
        try:
            parse_schedules(doc["schedules"])
        except InvalidSchedule as exc:
            raise InvalidDefinition(str(exc)) from None
    if s.runtime == "docker" and not s.container.image:
        raise InvalidDefinition("settings.container.image is required when settings.runtime is docker")
    if "probes" in doc:  # wingman's key beside Wings' ones (engine.probes); kept as given
        try:
            parse_probes(doc["probes"], (s.allocations or Allocations()).default.port)
        except InvalidProbe as exc:
            raise InvalidDefinition(str(exc)) from None
    try:
        definition = d.model_dump(mode="json", exclude_none=False)
    except ValueError as exc:  # e.g. "Maximum serialization depth exceeded" for absurd nesting
        raise InvalidDefinition(f"the definition cannot be stored: {exc}") from None
    return ServerConfig(
        uuid=s.uuid,
        name=s.meta.name or s.uuid,
        invocation=s.invocation,
        environment={k: _env_value(v) for k, v in s.environment.items()},
        runtime=s.runtime,
        image=s.container.image,
        memory_limit=s.build.memory_limit,
        swap=s.build.swap,
        disk_space=s.build.disk_space,
        cpu_limit=s.build.cpu_limit,
        pids_limit=s.build.pids_limit,
        io_weight=s.build.io_weight,
        threads=s.build.threads,
        oom_disabled=s.build.oom_disabled,
        allocations=s.allocations or Allocations(),
        stop_type=p.stop.type,
        stop_value=p.stop.value,
        stop_timeout=s.stop_timeout,
        done=tuple(p.startup.done),
        strip_ansi=p.startup.strip_ansi,
        suspended=s.suspended,
        crash_detection_enabled=s.crash_detection_enabled,
        restart_policy=s.restart_policy,
        definition=definition,
    )


def boot_restart_settings(definition: dict[str, Any]) -> tuple[str, bool | None]:
    """(restart policy, the server's own crash detection switch) read from a recorded
    definition (a `parse_definition` dump, every default filled in) without parsing it again:
    boot asks this of every offline server, and a node has thousands."""
    settings = definition.get("settings") or {}
    return (
        (settings.get("restart_policy") or {}).get("policy") or RestartPolicy().policy,
        settings.get("crash_detection_enabled"),
    )


def _env_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "definition"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two definitions (for the change event)."""
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        path = f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys.extend(changed_keys(a, b, path + "."))
        elif a != b:
            keys.append(path)
    return keys
