"""The daemon's configuration: one typed place, read from a Wings-like YAML file plus environment
variables (WINGMAN_TOKEN, WINGMAN_DATABASE_URL, WINGMAN_API_HOST, WINGMAN_API_PORT override it)."""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from wingman.engine.config_docker import DockerConfig
from wingman.engine.config_keys import UnknownKeys, sort_keys
from wingman.engine.config_metrics import MetricsConfig
from wingman.engine.config_servers import ServerDocs
from wingman.engine.config_witnesses import CosigningWitnessConfig, distinct_witnesses
from wingman.engine.store.database import sqlite_url
from wingman.engine.store.hashing import json_loads

DEFAULT_CONFIG_PATH = Path("wingman.yml")
# A node id: this node in a fleet database and in every checkpoint it signs.
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


class ConfigError(Exception):
    """The config file is missing a required key or has a bad value; the message says which."""


class SslConfig(BaseModel):
    """Wings' `api.ssl`: serve HTTPS and WSS with this certificate and key (certbot's files)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    cert: Path | None = None  # the certificate chain, PEM (certbot: fullchain.pem)
    key: Path | None = None  # its private key, PEM, unencrypted (certbot: privkey.pem)

    @model_validator(mode="after")
    def _both_when_enabled(self) -> SslConfig:
        if self.enabled and not (self.cert and self.key):
            raise ValueError("api.ssl.enabled is true: api.ssl.cert and api.ssl.key must both be set")
        return self


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    ssl: SslConfig = Field(default_factory=SslConfig)


class CrashDetection(BaseModel):
    """Wings' `system.crash_detection`, with Wings' defaults."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True  # for every server of the node, unless its own crash_detection_enabled says no
    detect_clean_exit_as_crash: bool = True  # an exit code 0 nobody asked for is a crash too
    timeout: float = Field(default=60, ge=0)  # no automatic restart when the last crash is more recent; 0: no limit


class ServerUserRange(BaseModel):
    """The uids game servers run as, one per server (engine.environments.server_users)."""

    model_config = ConfigDict(extra="forbid")
    first_uid: int = Field(default=200_000, ge=1000, le=2**31 - 2**20)  # never root, a system user or a person's
    count: int = Field(default=100_000, ge=1, le=2**20)


def _host_timezone() -> str:
    """The host's zone name as Wings finds it ($TZ, then /etc/timezone), else UTC."""
    zone = os.environ.get("TZ", "").lstrip(":")
    if not zone:
        try:
            zone = Path("/etc/timezone").read_text().strip()
        except OSError:
            zone = ""
    return zone or "UTC"


class SystemConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # Wings' keys wingman does not use are taken out before (config_keys)
    root_directory: Path = Path("./var")
    data: Path | None = None  # default: <root_directory>/volumes
    # Local servers' console files and stdin FIFOs (they outlive the daemon). Default: /run/wingman
    # (memory, so a full disk cannot silence a server's output) when it can be used, else
    # <root_directory>/run.
    run_directory: Path | None = None
    # Kept for Wings-like configs; not used: every server runs as a user of its own (server_users).
    user: str | dict[str, Any] | None = None  # Wings writes a mapping (rootless, uid, gid)
    server_users: ServerUserRange = Field(default_factory=lambda: ServerUserRange())
    # A daemon that is not root cannot switch users, and refuses to start servers unless this is
    # set: then they run as the daemon's own user and can read its token, database and keys. For a
    # demo on one's own machine, never for a node. Ignored when the daemon runs as root.
    insecure_run_servers_as_daemon_user: bool = False
    crash_detection: CrashDetection = Field(default_factory=CrashDetection)
    # How many servers boot recovery restores at once (adopting, reaping, restarting); the API
    # answers throughout, and a server not restored yet says so.
    boot_concurrency: int = Field(default=16, ge=1, le=1024)
    # Activity for the Panel (engine.remote.activity): a batch of at most this many entries every
    # this many seconds, as Wings sends it.
    activity_send_interval: float = Field(default=60, gt=0, le=86400)
    activity_send_count: int = Field(default=100, ge=1, le=10_000)
    # Wings' `system.timezone`: every server's TZ (a yolk's entrypoint and the JVM read it).
    timezone: str = Field(default_factory=lambda: _host_timezone(), min_length=1, max_length=64)
    # Wings' `system.tmp_directory`: where an egg's install script waits to be mounted into its container.
    tmp_directory: Path = Path("/tmp/wingman")
    # The power statechart the daemon runs (docs/statechart.md); default: the packaged one. A change
    # is checked against the node's history at start, and recorded in the log.
    statechart: Path | None = None


class DatabaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None


class AuditConfig(BaseModel):
    """Signed checkpoints over the whole log (engine.checkpoints)."""

    model_config = ConfigDict(extra="forbid")
    key_file: Path | None = None  # Ed25519 private key (PEM); default <root_directory>/checkpoint-key.pem
    checkpoint_file: Path | None = None  # JSON lines; default <root_directory>/checkpoints.jsonl
    checkpoint_every_events: int = Field(default=1000, ge=1, le=1_000_000)
    checkpoint_every_seconds: float = Field(default=1.0, gt=0, le=86400)
    witness_url: str | None = None  # each checkpoint is POSTed here as JSON when set
    witnesses: list[CosigningWitnessConfig] = Field(default_factory=list)  # cosigning witnesses (tlog-witness)
    node_id: str | None = None  # named in every checkpoint; default: the host name

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, v: str | None) -> str | None:
        if v is not None and not NODE_ID.match(v):
            raise ValueError(
                "node_id must be 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
            )
        return v

    @field_validator("witness_url")
    @classmethod
    def _witness(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("witness_url must be an http:// or https:// URL")
        return v

    @field_validator("witnesses")
    @classmethod
    def _witnesses(cls, v: list[CosigningWitnessConfig]) -> list[CosigningWitnessConfig]:
        return distinct_witnesses(v)


class Rate(BaseModel):
    """A token bucket: up to `burst` messages at once, one more every `every` seconds."""

    model_config = ConfigDict(extra="forbid")
    burst: int = Field(ge=1, le=100_000)
    every: float = Field(gt=0, le=3600)


def _default_rates() -> dict[str, Rate]:
    # Close to Wings' own per-event limits; "global" counts every inbound message of a socket.
    return {
        "global": Rate(burst=20, every=0.05),
        "auth": Rate(burst=5, every=5),
        "set state": Rate(burst=4, every=1),
        "send command": Rate(burst=10, every=0.1),
        "send logs": Rate(burst=2, every=5),
        "send stats": Rate(burst=4, every=1),
    }


class WebsocketConfig(BaseModel):
    """The Wings websocket at /api/servers/{uuid}/ws (see the README's Websocket section)."""

    model_config = ConfigDict(extra="forbid")
    # An inbound frame; a larger one closes the socket with 1009.
    max_frame_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    max_sockets_per_server: int = Field(default=50, ge=1, le=100_000)
    queue_frames: int = Field(default=2048, ge=16, le=1_000_000)  # outbound frames waiting; more closes the socket
    log_lines: int = Field(default=150, ge=0, le=1000)  # console lines `send logs` answers with (Wings: 150)
    # Console lines per second one socket is sent at most; beyond, lines are skipped (and said so)
    # rather than a flooding server getting every viewer closed as a slow reader.
    console_lines_per_second: int = Field(default=2000, ge=1, le=1_000_000)
    rate_limits: dict[str, Rate] = Field(default_factory=_default_rates)

    @field_validator("rate_limits")
    @classmethod
    def _known_events(cls, v: dict[str, Rate]) -> dict[str, Rate]:
        unknown = set(v) - set(_default_rates())
        if unknown:
            raise ValueError(f"no rate limit for {sorted(unknown)}; known: {sorted(_default_rates())}")
        return {**_default_rates(), **v}


class UtilizationConfig(BaseModel):
    """Resource sampling of running servers (GET /api/servers/{uuid} `utilization`, `stats` frames)."""

    model_config = ConfigDict(extra="forbid")
    interval_seconds: float = Field(default=2.0, ge=0.2, le=60)
    disk_interval_seconds: float = Field(default=60.0, ge=1, le=86_400)


class EventStreamConfig(BaseModel):
    """GET /api/events/stream (Server-Sent Events)."""

    model_config = ConfigDict(extra="forbid")
    heartbeat_seconds: float = Field(default=15.0, ge=0.1, le=300)
    queue_events: int = Field(default=10_000, ge=16, le=1_000_000)  # live events held per stream while it is written


class RemoteQueryConfig(BaseModel):
    """Wings' `remote_query`: how the daemon asks the Panel (`remote`) for its servers."""

    model_config = ConfigDict(extra="allow")
    timeout: float = Field(default=30, gt=0, le=3600)  # seconds per request to the Panel
    boot_servers_per_page: int = Field(default=50, ge=1, le=10_000)  # servers per page of the boot inventory
    # wingman: the longest wait between tries of a Panel that is down
    retry_max_seconds: float = Field(default=60, ge=1, le=3600)


def _valid_node_id(v: str | None) -> str | None:
    if v is not None and not NODE_ID.match(v):
        raise ValueError("must be 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
    return v


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # This node in a fleet (checkpoints name it). Set here, or audit.node_id, or else the Panel's
    # `uuid` of the node, or else the host name. `node_id` is a property (the resolved one).
    node_id_setting: str | None = Field(default=None, alias="node_id")
    uuid: str | None = None  # the node's uuid in the Panel (its config.yml has it)
    _ignored_keys: list[str] = PrivateAttr(default_factory=list)

    token: str = Field(min_length=8)
    token_id: str | None = None
    audit_tokens: list[str] = Field(default_factory=list)
    remote: str | None = None
    # Which Panel `remote` is: pelican also hears each state change (POST .../container/status).
    remote_flavor: Literal["pterodactyl", "pelican"] = "pterodactyl"
    remote_query: RemoteQueryConfig = Field(default_factory=RemoteQueryConfig)
    # wingman: the runtime of a server whose definition names none when it comes from the Panel
    # (a Panel's eggs are Docker images, as under Wings); `process` runs them as local processes.
    remote_runtime: Literal["docker", "process"] = "docker"
    api: ApiConfig = Field(default_factory=ApiConfig)
    allowed_origins: list[str] = Field(default_factory=list)
    system: SystemConfig = Field(default_factory=SystemConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    docker: DockerConfig = Field(default_factory=DockerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    websocket: WebsocketConfig = Field(default_factory=WebsocketConfig)
    utilization: UtilizationConfig = Field(default_factory=UtilizationConfig)
    event_stream: EventStreamConfig = Field(default_factory=EventStreamConfig)
    # Validated as a list of mappings, then held packed until the daemon records them (see
    # engine.config_servers: why not as parsed objects).
    servers: ServerDocs = Field(default_factory=ServerDocs)
    source: Path | None = Field(default=None, exclude=True)  # the file this came from

    _node_ids = field_validator("node_id_setting", "uuid")(_valid_node_id)

    @field_validator("audit_tokens")
    @classmethod
    def _audit_tokens(cls, v: list[str]) -> list[str]:
        for t in v:
            if len(t) < 8:
                raise ValueError("each audit token must be at least 8 characters")
        return v

    @property
    def root_directory(self) -> Path:
        return self._resolve(self.system.root_directory)

    @property
    def data_directory(self) -> Path:
        return self._resolve(self.system.data) if self.system.data else self.root_directory / "volumes"

    @property
    def run_directory(self) -> Path:
        if self.system.run_directory:
            return self._resolve(self.system.run_directory)
        shared = Path("/run/wingman")
        if (shared.is_dir() and os.access(shared, os.W_OK)) or os.access(shared.parent, os.W_OK):
            return shared
        return self.root_directory / "run"

    @property
    def statechart_path(self) -> Path | None:
        return self._resolve(self.system.statechart) if self.system.statechart else None

    @property
    def database_url(self) -> str:
        return self.database.url or sqlite_url(self.root_directory)

    @property
    def checkpoint_key_path(self) -> Path:
        return self._resolve(self.audit.key_file) if self.audit.key_file else self.root_directory / "checkpoint-key.pem"

    @property
    def checkpoint_file_path(self) -> Path:
        f = self.audit.checkpoint_file
        return self._resolve(f) if f else self.root_directory / "checkpoints.jsonl"

    @property
    def node_id(self) -> str:
        for configured in (self.node_id_setting, self.audit.node_id, self.uuid):
            if configured:
                return configured
        host = re.sub(r"[^A-Za-z0-9._:-]", "-", socket.gethostname())[:128].lstrip("._:-")
        return host or "wingman"

    @property
    def ssl_cert_path(self) -> Path | None:
        return self._resolve(self.api.ssl.cert) if self.api.ssl.cert else None

    @property
    def ssl_key_path(self) -> Path | None:
        return self._resolve(self.api.ssl.key) if self.api.ssl.key else None

    @property
    def ignored_keys(self) -> list[str]:
        """Wings' keys the file holds that wingman does not use (dotted), for the log."""
        return list(self._ignored_keys)

    def _resolve(self, p: Path) -> Path:
        # Relative paths are relative to the config file, so the daemon can start from anywhere.
        base = self.source.parent if self.source else Path.cwd()
        return (base / p).resolve() if not p.is_absolute() else p


def _apply_env(raw: dict[str, Any]) -> dict[str, Any]:
    env = os.environ
    if env.get("WINGMAN_TOKEN"):
        raw["token"] = env["WINGMAN_TOKEN"]
    if env.get("WINGMAN_DATABASE_URL"):
        raw.setdefault("database", {})["url"] = env["WINGMAN_DATABASE_URL"]
    if env.get("WINGMAN_API_HOST"):
        raw.setdefault("api", {})["host"] = env["WINGMAN_API_HOST"]
    if env.get("WINGMAN_API_PORT"):
        raw.setdefault("api", {})["port"] = int(env["WINGMAN_API_PORT"])
    return raw


def parse_config(raw: Any, source: Path | None = None) -> DaemonConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source or 'config'}: the top level must be a mapping of keys")
    raw = _apply_env(dict(raw))
    if "token" not in raw:
        raise ConfigError(f"{source or 'config'}: `token` is required (the Panel's node token)")
    try:
        raw, ignored = sort_keys(raw, DaemonConfig)
    except UnknownKeys as exc:
        raise ConfigError(f"{source or 'config'}: {exc}") from None
    try:
        cfg = DaemonConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source or 'config'}: {problems}") from None
    cfg.source = source.resolve() if source else None
    cfg._ignored_keys = ignored
    return cfg


def load_config(path: Path | str | None = None) -> DaemonConfig:
    """Read the config file (default ./wingman.yml, or $WINGMAN_CONFIG)."""
    p = Path(path or os.environ.get("WINGMAN_CONFIG") or DEFAULT_CONFIG_PATH)
    if not p.exists():
        raise ConfigError(f"config file {p} does not exist (run `wingman serve` once to create one)")
    text = p.read_text()
    try:
        raw = read_document(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    return parse_config(raw, p)


def read_document(text: str) -> Any:
    """The config file's content (also what a start reads again for its server's definition). A file
    in JSON (which is YAML too: tools that generate a node's config often write it) is read by a
    JSON parser: YAML's constructor costs about 0.4 ms per server definition, 4 s for a node of
    10,000 servers, where JSON takes a few milliseconds."""
    if text.lstrip().startswith("{"):
        try:
            return json_loads(text)
        except ValueError:
            pass  # YAML in flow style, not JSON: YAML reads it
    # libyaml's parser when PyYAML has it (the pure-Python one is slower still).
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def new_token() -> str:
    return secrets.token_urlsafe(32)
