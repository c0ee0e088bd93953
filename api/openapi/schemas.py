"""What the API answers, as pydantic models: the OpenAPI document's response schemas.

They describe the JSON the routes build (they are not used to build it), and the fuzzing tests
check every answer against them. Fields the API always sends are required; objects allow more
keys than listed (a newer daemon may add some), as clients of a JSON API expect.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from wingman.engine.events import PowerAction
from wingman.engine.servers.definition import ServerDefinition
from wingman.engine.servers.operations import FINISHED_STATUSES, OPEN_STATUSES
from wingman.engine.statechart import load_statechart


def server_uuid_text(v: str) -> str:
    try:
        return str(uuidlib.UUID(v))
    except ValueError:
        raise ValueError("uuid must be a UUID") from None


_CHART = load_statechart()
State = Literal[_CHART.states]  # type: ignore[valid-type]  # the statechart's states, whatever they are
Status = Literal[tuple(sorted(OPEN_STATUSES | FINISHED_STATUSES))]  # type: ignore[valid-type]


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(_Body):
    error: str = Field(description="What went wrong, in words.")


class Links(_Body):
    self: str
    server: str


class OperationBody(_Body):
    """A power operation: what was asked, and how it ended (once it has)."""

    id: str
    server: str
    action: PowerAction
    status: Status
    reason: str | None
    wait_seconds: int
    actor: str | None
    channel: str | None
    requested_at: str | None
    finished_at: str | None
    links: Links


class OperationEvent(_Body):
    position: int
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: str


class OperationWithEvents(OperationBody):
    events: list[OperationEvent]


class Network(_Body):
    rx_bytes: int
    tx_bytes: int


class Utilization(_Body):
    """Wings' resource figures (zeros beside the state when the server is offline)."""

    memory_bytes: int
    memory_limit_bytes: int
    cpu_absolute: float
    network: Network
    uptime: int = Field(description="milliseconds")
    state: State
    disk_bytes: int


class ExitPending(_Body):
    """An exit as the daemon saw it; `process.exited` records the same, `observed_at` included."""

    observed_at: str = Field(description="When the daemon saw the process end (RFC 3339).")
    exit_code: int | None
    signal: str | None
    oom_killed: bool
    reason: str | None


class ServerBody(_Body):
    uuid: str
    state: State
    version: int
    position: int
    is_suspended: bool
    deleted: bool
    operation_in_flight: str | None
    last_transition: dict[str, Any] | None
    configuration: dict[str, Any] | None
    updated_at: str | None
    pending_restart: dict[str, Any] | None
    utilization: Utilization
    recovery: Literal["pending", "restored", "deferred"]
    exit_pending: ExitPending | None = Field(
        description="The process's exit, seen but not committed to the log yet (the store cannot write: "
        "disk full); null once it is committed, or when nothing exited. `state` stays what "
        "the log says until then."
    )


class ServerList(RootModel[list[ServerBody]]):
    pass


class LogsBody(_Body):
    data: list[str]


class PanelCreateBody(BaseModel):
    """Wings' create: the server is the Panel's, fetched by its uuid (a node with `remote`)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    uuid: str = Field(json_schema_extra={"format": "uuid"})
    start_on_completion: bool = False

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, v: str) -> str:
        return server_uuid_text(v)


class CreateServerBody(RootModel[ServerDefinition | PanelCreateBody]):
    """Either the server's full definition or Wings' `{"uuid", "start_on_completion"}`."""


class BootRecovery(_Body):
    interrupted: int
    adopted: int
    reaped: int
    deferred: int
    restarted: int
    restoring: int
    done: bool


class DaemonFacts(_Body):
    uptime_seconds: float
    servers: int
    runtimes: list[str]
    database: Literal["sqlite", "postgresql"]
    events: int
    boot_recovery: BootRecovery
    settled: bool = Field(
        description="Boot is over: recovery is done and the memory boot used is handed back "
        "(the daemon's last full garbage collection of its boot is behind it)."
    )


class SystemBody(_Body):
    architecture: str
    cpu_count: int | None
    kernel_version: str
    os: str
    version: str
    wingman: DaemonFacts


class EventBody(_Body):
    """An event as the log holds it. `data`, `metadata` and `recorded_at` are what the row says:
    a row edited by hand may hold text there instead (verification names it)."""

    position: int
    stream_id: str
    server: str
    version: int
    event_id: str
    type: str
    data: Any
    metadata: Any
    recorded_at: str
    prev_hash: str
    hash: str
    what: str
    why: str


class EventsPage(_Body):
    events: list[EventBody]
    next_after: int | None = Field(description="`after` of the next page; null on the last one")


class StateAt(_Body):
    """A server as the log made it at a point. Only the first fields when it did not exist yet."""

    server: str
    at: dict[str, Any]
    exists: bool
    state: State | None
    version: int
    position: int | None


class VerifyReport(_Body):
    ok: bool
    server: str | None
    checked_up_to_position: int
    events_checked: int
    streams_checked: int
    first_problem: dict[str, Any] | None
    problems: list[dict[str, Any]]
    problems_total: int
    warnings: list[str]
    live_state_checked: bool
    open_operations: int
    hash_chains_ok: bool
    checkpoints: dict[str, Any] | None


class KeyBody(_Body):
    algorithm: Literal["Ed25519"]
    public_key: str
    public_key_pem: str
    node: str
    tree_size: int
    not_yet_covered: int
    latest_checkpoint: dict[str, Any] | None


class RotationBody(_Body):
    old_key: str
    new_key: str


MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody,
    OperationBody,
    OperationWithEvents,
    ServerBody,
    ServerList,
    LogsBody,
    SystemBody,
    EventsPage,
    StateAt,
    VerifyReport,
    KeyBody,
    RotationBody,
)
