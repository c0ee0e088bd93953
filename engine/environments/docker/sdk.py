"""The seam to the docker SDK, which ships no type stubs (mypy reads all of `docker` as Any).

What wingman calls on the SDK's low-level client (`docker.APIClient`) is written down here as a
Protocol, and what the engine answers as TypedDicts holding only the keys wingman reads. The
client is Any in one place (DockerRuntime._client, where the SDK builds it); every call past it
is checked against `DockerAPI`. The engine's documents are JSON: a key wingman reads is typed as
Docker's API documents it, and `total=False` where the engine may leave it out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal, NotRequired, Protocol, TypeAlias, TypedDict, overload

import requests

# The SDK's hijacked attach socket (a SocketIO over its connection, or the socket itself):
# attach.take_attach_socket reads its private parts (`_sock`, its response's buffer), which no
# type describes, and hands back a plain socket. It goes nowhere else.
SdkSocket: TypeAlias = Any


class ContainerStatus(TypedDict, total=False):
    """A container's `State`, as its inspection says it."""

    Status: str  # created, running, paused, restarting, removing, exited, dead
    Running: bool
    Pid: int
    ExitCode: int
    OOMKilled: bool


class ContainerConfig(TypedDict, total=False):
    """A container's `Config`, as its inspection says it."""

    Image: str
    Cmd: list[str] | None
    StopSignal: str


class ContainerInspect(TypedDict):
    """`inspect_container`: the keys wingman reads."""

    Id: str
    Name: str
    State: ContainerStatus
    Config: NotRequired[ContainerConfig | None]
    HostConfig: NotRequired[dict[str, object]]  # compared with what was asked (limits.discarded)


class ImageConfig(TypedDict, total=False):
    """An image's `Config`: what it runs (spec.runs_own_command)."""

    Entrypoint: list[str] | None
    Cmd: list[str] | None


class ImageInspect(TypedDict, total=False):
    Config: ImageConfig | None


class ContainerSummary(TypedDict):
    """One entry of `containers` (the list, not an inspection)."""

    Id: str
    Names: NotRequired[list[str]]
    State: NotRequired[str]
    Labels: NotRequired[dict[str, str] | None]


class CreatedContainer(TypedDict):
    Id: str
    Warnings: NotRequired[list[str] | None]


class EventActor(TypedDict, total=False):
    ID: str
    Attributes: dict[str, str]


class DockerEvent(TypedDict, total=False):
    """One message of the events stream (decoded). `status` is the older engines' `Action`."""

    id: str
    Action: str
    status: str
    Actor: EventActor


class EventStream(Protocol):
    """The events stream: read in the watcher's thread, closed by another one to end it."""

    def __iter__(self) -> Iterator[DockerEvent]: ...

    def close(self) -> None: ...


class DockerAPI(Protocol):
    """The calls wingman makes on `docker.APIClient`. Keyword arguments that are passed on to the
    engine as they are (a host config, a create's options) are `object`: the SDK checks them."""

    base_url: str
    api_version: str

    def ping(self) -> bool: ...

    def info(self) -> dict[str, object]: ...

    def close(self) -> None: ...

    def inspect_container(self, container: str) -> ContainerInspect: ...

    def inspect_image(self, image: str) -> ImageInspect: ...

    def inspect_network(self, net_id: str) -> object: ...

    def containers(
        self, *, all: bool = False, filters: Mapping[str, object] | None = None
    ) -> list[ContainerSummary]: ...

    def create_host_config(self, **kwargs: object) -> dict[str, object]: ...

    def create_container(self, **kwargs: object) -> CreatedContainer: ...

    def create_network(self, name: str, **kwargs: object) -> object: ...

    def start(self, container: str) -> None: ...

    def kill(self, container: str, signal: str | None = None) -> None: ...

    def remove_container(self, container: str, v: bool = False, link: bool = False, force: bool = False) -> None: ...

    def attach_socket(self, container: str, params: Mapping[str, int] | None = None) -> SdkSocket: ...

    @overload
    def logs(
        self, container: str, *, stdout: bool, stderr: bool, stream: Literal[True], follow: bool
    ) -> Iterator[bytes]: ...

    @overload
    def logs(self, container: str, *, stdout: bool, stderr: bool, tail: int) -> bytes: ...

    def events(self, *, decode: bool, filters: Mapping[str, object]) -> EventStream: ...

    def post(self, url: str, **kwargs: object) -> requests.Response: ...
