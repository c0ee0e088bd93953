"""The event vocabulary: every fact the daemon records, as typed records.

An event is a type name plus a JSON object of data; metadata (who, through which channel, why)
travels beside it. Each record class validates its data, so nothing untyped reaches the store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field

from wingman.engine.event_types import EventType

if TYPE_CHECKING:  # for its type only: the vocabulary does not depend on the runtimes
    from wingman.engine.environments.base import ProcessHandle

PowerAction = Literal["start", "stop", "restart", "kill"]
ACTIONS: tuple[str, ...] = get_args(PowerAction)  # the one spelling of the four actions


class Metadata(BaseModel):
    """Why an event happened and who asked. Stored as the event's metadata column."""

    model_config = ConfigDict(extra="allow")

    actor: str = "system"  # "node-token", "panel", "cli", "daemon"
    channel: str = "internal"  # "http", "cli", "config", "boot", "internal"
    source_ip: str | None = None
    request_id: str | None = None
    operation_id: str | None = None
    cause: str | None = None  # a Cause (engine.event_types): operator, boot_recovery, exited ...


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: ClassVar[EventType]


# Keyed by the members, looked up by a member or its string (a StrEnum member is its string).
_REGISTRY: dict[str, type[Event]] = {}
_EventClass = TypeVar("_EventClass", bound=type[Event])


def event(type_name: EventType) -> Callable[[_EventClass], _EventClass]:
    """The class of the records of one event type (each type has one class)."""

    def register(cls: _EventClass) -> _EventClass:
        assert type_name not in _REGISTRY, f"{type_name} has a class already"
        cls.type = type_name
        _REGISTRY[type_name] = cls
        return cls

    return register


def event_class(type_name: EventType | str) -> type[Event]:
    """The class of an event type (a member or its string; KeyError for an unknown type)."""
    return _REGISTRY[type_name]


# -- servers -------------------------------------------------------------------------------------


@event(EventType.SERVER_REGISTERED)
class ServerRegistered(Event):
    definition: dict[str, Any]


@event(EventType.CONFIGURATION_CHANGED)
class ConfigurationChanged(Event):
    definition: dict[str, Any]
    changed_keys: list[str] = Field(default_factory=list)


@event(EventType.SERVER_SUSPENDED)
class ServerSuspended(Event):
    pass


@event(EventType.SERVER_UNSUSPENDED)
class ServerUnsuspended(Event):
    pass


@event(EventType.SERVER_DELETED)
class ServerDeleted(Event):
    pass


@event(EventType.ENVIRONMENT_DESTROYED)
class EnvironmentDestroyed(Event):
    """A step of a delete: what the server's runtime kept for it is gone (Wings' Destroy). `removed`
    names each thing (Docker: its container; a local process: the folder of its console file, stdin
    FIFO and exit status); empty when nothing was left."""

    runtime: str
    removed: list[str] = Field(default_factory=list)


@event(EventType.FILES_REMOVED)
class FilesRemoved(Event):
    """After `server.deleted`, from the background: the server's folder is gone (`existed` is false
    when it never had one)."""

    folder: str
    existed: bool = True


@event(EventType.FILES_REMOVAL_FAILED)
class FilesRemovalFailed(Event):
    """After `server.deleted`, from the background: the server's folder could not be removed, or not
    all of it. What is left is under `left_at` (None: the folder was not moved), for the operator."""

    folder: str
    left_at: str | None = None
    problems: list[str] = Field(min_length=1)


@event(EventType.WEBSOCKET_TOKENS_DENIED)
class WebsocketTokensDenied(Event):
    """From now on, websocket tokens with one of these `jti`s issued up to this event are refused
    (the Panel calls POST /api/servers/{uuid}/ws/deny when a user's access changes)."""

    jtis: list[str] = Field(min_length=1)


@event(EventType.CONSOLE_COMMAND)
class ConsoleCommand(Event):
    """A websocket user sent this line to the server's console. Recorded (the user and their IP
    in the metadata) before the console is written, so the Panel's activity log hears of every
    command that reached a server (engine.remote.activity)."""

    command: str


# What the Panel's activity log is told of: actions taken over this channel (api.websocket.session
# records them so), and what set an entry aside.
WEBSOCKET_CHANNEL = "websocket"


@event(EventType.ACTIVITY_REFUSED)
class ActivityRefused(Event):
    """The Panel refused this activity entry on its own (a 4xx for a batch of one), so it is set
    aside and not sent again: the queue goes on behind it (engine.remote.activity)."""

    source_event_id: str  # the event the entry was made from
    activity: str  # what the Panel was told, e.g. server:console.command
    status: int
    reason: str


# -- power operations ----------------------------------------------------------------------------


@event(EventType.POWER_REQUESTED)
class PowerRequested(Event):
    operation_id: str
    action: PowerAction
    wait_seconds: int


@event(EventType.POWER_STARTED)
class PowerStarted(Event):
    """The operation took the power lock (or, for kill, went ahead without it)."""

    operation_id: str
    action: PowerAction
    lock_acquired: bool = True


@event(EventType.POWER_REJECTED)
class PowerRejected(Event):
    operation_id: str
    action: PowerAction
    reason: str


@event(EventType.POWER_SUCCEEDED)
class PowerSucceeded(Event):
    operation_id: str
    action: PowerAction
    detail: str | None = None


@event(EventType.POWER_FAILED)
class PowerFailed(Event):
    operation_id: str
    action: PowerAction
    reason: str


@event(EventType.POWER_CANCELLED)
class PowerCancelled(Event):
    operation_id: str
    action: PowerAction
    cancelled_by: str | None = None  # the operation id that preempted it
    reason: str


@event(EventType.POWER_INTERRUPTED)
class PowerInterrupted(Event):
    """The daemon stopped while the operation was in flight; recorded at the next boot."""

    operation_id: str
    action: PowerAction
    reason: str = "the daemon restarted while the operation was in flight"


@event(EventType.STOP_TIMED_OUT)
class StopTimedOut(Event):
    operation_id: str | None = None
    timeout_seconds: float


# -- state and process ---------------------------------------------------------------------------


@event(EventType.STATE_CHANGED)
class StateChanged(Event):
    from_state: str
    to_state: str
    trigger: str
    cause: str
    operation_id: str | None = None


@event(EventType.PROCESS_STARTED)
class ProcessStarted(Event):
    runtime: str
    pid: int | None = None
    container_id: str | None = None
    adopted: bool = False
    start_ticks: int | None = None  # local processes: start time and boot, so a reused pid is
    boot_id: str | None = None  # never taken for this process by a later daemon

    @classmethod
    def of(cls, handle: ProcessHandle, adopted: bool | None = None) -> ProcessStarted:
        return cls(
            runtime=handle.runtime,
            pid=handle.pid,
            container_id=handle.container_id,
            adopted=handle.adopted if adopted is None else adopted,
            start_ticks=handle.start_ticks,
            boot_id=handle.boot_id,
        )


@event(EventType.PROCESS_EXITED)
class ProcessExited(Event):
    exit_code: int | None = None
    signal: str | None = None
    oom_killed: bool = False
    reason: str | None = None  # e.g. "container removed", "lost at daemon restart"
    # When the daemon saw the exit. The commit can come much later (the store cannot write while
    # its disk is full), and the event's own time is the commit's: the audit reads this instead
    # where the moment of the exit matters. None for exits found at boot (the moment is unknown)
    # and in logs written before it existed.
    observed_at: datetime | None = None


@event(EventType.SERVER_CRASHED)
class ServerCrashed(Event):
    """The process exited from `starting` or `running` without an operator's stop or kill (or
    was gone when the daemon came back). What the crash handler decided follows as `crash.decided`."""

    exit_code: int | None = None
    signal: str | None = None
    oom_killed: bool = False
    reason: str | None = None
    uptime_seconds: float = 0.0  # how long it had been running (0: it never got there)
    last_lines: list[str] = Field(default_factory=list)  # the console just before the end
    streak_reset: bool = False  # it ran long enough (restart_policy.reset_after) to start a new count


@event(EventType.CRASH_DECIDED)
class CrashDecided(Event):
    """What the crash handler does about a crash (or a server found down at boot), and why; also
    a pending restart that an operator's action cancelled."""

    restart: bool
    reason: str  # e.g. "restarting in 4 s, crash 2 of 5 in 10 min"
    delay_seconds: float | None = None
    crash_event_id: str | None = None


@event(EventType.PREBOOT_CHECK_FAILED)
class PrebootCheckFailed(Event):
    check: str  # sync | suspension | environment | disk | config_files | permissions
    reason: str
    fatal: bool = True
    operation_id: str | None = None


# -- recorded form -------------------------------------------------------------------------------


class RecordedEvent(BaseModel):
    """An event as the store holds it."""

    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime
    prev_hash: str
    hash: str

    def typed(self) -> Event:
        return event_class(self.type).model_validate(self.data)

    @classmethod
    def trusted(cls, **values: Any) -> RecordedEvent:
        """An event from values that are already valid (the writer's own rows), without
        validation: the store builds one per event committed, and pydantic's `model_construct`
        costs several times this. Every field must be given."""
        ev = _new(cls)
        _set(ev, "__dict__", values)
        _set(ev, "__pydantic_fields_set__", _RECORDED_FIELDS)
        _set(ev, "__pydantic_extra__", None)
        _set(ev, "__pydantic_private__", None)
        return ev


_new, _set = object.__new__, object.__setattr__
_RECORDED_FIELDS = frozenset(RecordedEvent.model_fields)


class NewEvent(BaseModel):
    """An event ready to append: a typed record plus its metadata."""

    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]

    @classmethod
    def of(cls, record: Event, meta: Metadata | None = None, **meta_overrides: Any) -> NewEvent:
        md = (meta or Metadata()).model_copy(update=meta_overrides) if meta_overrides else (meta or Metadata())
        return cls.trusted(record.type, record.model_dump(mode="json"), md.model_dump(mode="json"))

    @classmethod
    def all_of(cls, records: Iterable[Event], meta: Metadata) -> list[NewEvent]:
        """`of` for several records under one metadata, dumped once: the events share that dict
        (nothing changes an event's metadata once it is made)."""
        md = meta.model_dump(mode="json")
        return [cls.trusted(r.type, r.model_dump(mode="json"), md) for r in records]

    @classmethod
    def trusted(cls, type: str, data: dict[str, Any], metadata: dict[str, Any]) -> NewEvent:
        """A NewEvent from a typed record's own dump (valid by construction), without
        validating it again: every power request makes a few of these."""
        ev = _new(cls)
        _set(ev, "__dict__", {"type": type, "data": data, "metadata": metadata})
        _set(ev, "__pydantic_fields_set__", _NEW_FIELDS)
        _set(ev, "__pydantic_extra__", None)
        _set(ev, "__pydantic_private__", None)
        return ev


_NEW_FIELDS = frozenset(NewEvent.model_fields)


_random_bytes = bytearray()  # from os.urandom, 4 KiB per system call instead of 10 bytes per id
os.register_at_fork(after_in_child=lambda: _random_bytes.clear())  # a child never reuses the parent's


def new_id() -> str:
    """A new event or operation id: a time-ordered UUID (version 7, RFC 9562: 48 bits of Unix
    milliseconds, then 74 random bits), spelled as str(uuid.UUID) spells it.

    Time order is for the database: the log's unique index on event ids and its index on
    operation ids then grow at one end, where random (version 4) ids land all over both and each
    commit writes a page of each per event (measured here: a group of 200 events committed in
    3 ms instead of 8.7). The random part comes from os.urandom, as uuid4's does."""
    if len(_random_bytes) < 10:
        _random_bytes[:] = os.urandom(4096)
    rand = int.from_bytes(_random_bytes[-10:], "big")
    del _random_bytes[-10:]
    ms = time.time_ns() // 1_000_000
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62 | rand & (2**62 - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# The install's and the Panel's events live in modules of their own; imported here so that `event_class` knows
# them wherever events are read back (a reader need not know which module spelled a type).
from wingman.engine import install_events as _install_events  # noqa: E402,F401
from wingman.engine import panel_events as _panel_events  # noqa: E402,F401
from wingman.engine.charts import events as _chart_events  # noqa: E402,F401
from wingman.engine.probes import events as _probe_events  # noqa: E402,F401
from wingman.engine.schedules import events as _schedule_events  # noqa: E402,F401
