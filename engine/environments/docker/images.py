"""Image pulls: a server's image is pulled at each start, before its container is created, as
Wings does (pterodactyl/wings environment/docker/container.go, `ensureImageExists`).

- Credentials: those of the first `docker.registries` entry whose key starts the image's name
  (Wings' prefix match), sent as the pull's X-Registry-Auth; none otherwise. The daemon user's
  ~/.docker/config.json is not read (the SDK's `pull` would): a node's credentials are in its
  config, as under Wings.
- The whole pull may take `docker.image_pull_timeout` seconds (Wings: 15 minutes). The stream's
  socket waits at most what is left, so a registry that stalls fails the pull at the deadline.
- Progress goes to `report`, bounded (ProgressLines): a large image must not flood the console.
- A pull that fails (registry unreachable, refused, timed out, an error in the stream) leaves
  the local copy in use when there is one, and says so; without one it raises PullFailed.
- A name that starts with `~` is local-only: never pulled, known to the engine without the `~`.

`pull` blocks (a worker thread) and knows nothing of servers, so the installer can pull its
install image with it. `ImagePuller` is the runtime's side of it, on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

import docker
import requests
import structlog
import urllib3
from docker.errors import ImageNotFound

from wingman.engine.config_docker import DockerConfig
from wingman.engine.environments.base import RuntimeFailure
from wingman.engine.environments.docker.sdk import DockerAPI

log = structlog.get_logger("wingman.docker")

# Wings' own words around a start's pull (server/listeners.go).
PULL_STARTED = "Pulling Docker container image, this could take a few minutes to complete..."
PULL_FINISHED = "Finished pulling Docker container image"
LOCAL_ONLY = "~"
PROGRESS_EVERY = 5.0  # seconds between two byte-progress lines of one pull (status changes always show)
MAX_LINES = 400  # lines one pull may print; a stream that goes on is cut short, once, with a line saying so
MAX_SHOWN = 300  # characters of one line: texts come from the registry too
MAX_MESSAGE = 1 << 20  # bytes of one stream line; longer is not the engine's JSON and is dropped
CONNECT_TIMEOUT = 60  # seconds to reach the engine (the pull's own time runs after that)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # no escapes from a registry reach a terminal

Message: TypeAlias = dict[str, object]  # one JSON object of the pull stream, as the engine sent it


def local_only(image: str) -> bool:
    """Wings' `~` prefix: an image that exists on this node only and is never pulled."""
    return image.startswith(LOCAL_ONLY)


def local_name(image: str) -> str:
    """The name the engine knows the image by: a local-only image's without its `~`."""
    return image[len(LOCAL_ONLY) :] if local_only(image) else image


@dataclass(frozen=True)
class PullResult:
    image: str  # the name the engine knows it by (see local_name)
    pulled: bool  # the registry served it: the local copy is now the registry's
    reason: str | None = None  # why it was not pulled, when a local copy is used instead


class PullFailed(RuntimeFailure):
    """The image could not be pulled and this node has no copy of it."""


class PullCancelled(RuntimeFailure):
    """The pull was given up (the start that wanted it was cancelled)."""


class PullCancel:
    """Lets another thread give up a pull under way: the stream's socket is shut down, which
    wakes the read blocked on it, and the engine drops the pull when its client goes. A pull
    still waiting for the engine's first answer is given up when that answer comes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.cancelled = False

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.cancelled:
                self._shut()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already: the pull is over


def _clean(text: object) -> str:
    return _CONTROL.sub("", str(text)).strip()[:MAX_SHOWN]


class ProgressLines:
    """The engine's pull messages as console lines, few of them: a layer's line when its status
    changes (Pulling fs layer, Downloading, Extracting, Pull complete, ...), the image's own lines
    (Digest, Status), and of the byte-progress ticks within a status at most one every `every`
    seconds for the whole pull (a slow pull still shows it moves). At most MAX_LINES lines."""

    def __init__(
        self, report: Callable[[str], None], clock: Callable[[], float] = time.monotonic, every: float = PROGRESS_EVERY
    ):
        self._report = report
        self._clock = clock
        self._every = every
        self._status: dict[str, str] = {}  # layer id -> the status last shown for it
        self._last_tick = clock()
        self.shown = 0

    def feed(self, message: Message) -> str | None:
        """Show what `message` says, if anything; returns the error it reports, if it is one."""
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail")
            reason = detail.get("message") if isinstance(detail, dict) else None
            return _clean(reason or message.get("error") or "the pull failed") or "the pull failed"
        status = message.get("status")
        if not isinstance(status, str) or not status:
            return None
        layer, progress = message.get("id"), message.get("progress")
        progress = f" {_clean(progress)}" if isinstance(progress, str) and progress else ""
        if not isinstance(layer, str) or not layer:
            self._show(f"{_clean(status)}{progress}")
        elif self._status.get(layer) != status:
            self._status[layer] = status
            self._show(f"{_clean(layer)}: {_clean(status)}{progress}")
        elif progress and self._clock() - self._last_tick >= self._every:
            self._last_tick = self._clock()
            self._show(f"{_clean(layer)}: {_clean(status)}{progress}")
        return None

    def _show(self, line: str) -> None:
        self.shown += 1
        if self.shown < MAX_LINES:
            self._report(line)
        elif self.shown == MAX_LINES:
            self._report("(the rest of the pull's progress is not shown)")


def messages(chunks: Iterator[bytes]) -> Iterator[Message]:
    """The JSON objects of a pull stream, one a line, whatever way the chunks cut them (each
    chunk is split once: a long line in small chunks costs no more than its length). What is not
    a JSON object (a garbled line, an over-long one) is skipped."""
    pending: list[bytes] = []  # the current line's pieces so far
    size, skipping = 0, False  # skipping: the current line is over-long, dropped up to its end
    for chunk in chunks:
        *ends, rest = chunk.split(b"\n")
        for piece in ends:
            if not skipping and size + len(piece) <= MAX_MESSAGE:
                message = _message(b"".join(pending) + piece)
                if message is not None:
                    yield message
            pending, size, skipping = [], 0, False
        if not skipping:
            pending.append(rest)
            size += len(rest)
            if size > MAX_MESSAGE:
                pending, size, skipping = [], 0, True
    if not skipping and pending:
        message = _message(b"".join(pending))
        if message is not None:
            yield message


def _message(line: bytes) -> Message | None:
    if not line.strip():
        return None
    try:
        message = json.loads(line)
    except ValueError:
        log.debug("pull stream: not JSON, skipped", line=line[:200])
        return None
    return message if isinstance(message, dict) else None


def _auth_header(image: str, docker_config: DockerConfig) -> dict[str, str]:
    registry = docker_config.registry_for(image)
    if registry is None:
        return {}
    creds = {"username": registry.username, "password": registry.password}
    return {"X-Registry-Auth": docker.auth.encode_header(creds).decode("ascii")}


def _refusal(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return _clean(message or response.text or f"{response.status_code} {response.reason}")


class _TimedOut(Exception):
    pass


def _stream(response: requests.Response, deadline: float, clock: Callable[[], float]) -> Iterator[bytes]:
    """The response's chunks, each read waiting no longer than what is left of the pull's time."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    chunks = response.raw.stream(None, decode_content=False)
    while True:
        left = deadline - clock()
        if left <= 0:
            raise _TimedOut
        if sock is not None:
            sock.settimeout(left)
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            raise _TimedOut from None
        yield chunk


def pull(
    api: DockerAPI,
    image: str,
    docker_config: DockerConfig,
    report: Callable[[str], None],
    cancel: PullCancel | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PullResult:
    """Pull `image` (blocking): its progress and, when the local copy is used instead, that fact,
    as lines to `report` (called in this thread). Raises PullFailed when the image cannot be
    pulled and is not on this node, PullCancelled when `cancel` was used, and requests'
    ConnectionError when the engine cannot be reached."""
    name = local_name(image)
    if local_only(image):
        return PullResult(name, pulled=False)
    cancel = cancel or PullCancel()
    timeout = docker_config.image_pull_timeout
    deadline = clock() + timeout
    repository, tag = docker.utils.parse_repository_tag(name)
    reason = None
    try:
        response = api.post(
            f"{api.base_url}/v{api.api_version}/images/create",
            params={"fromImage": repository, "tag": tag or "latest"},
            headers=_auth_header(name, docker_config),
            stream=True,
            timeout=(CONNECT_TIMEOUT, timeout),
        )
    except requests.exceptions.ReadTimeout:
        reason = f"the registry did not answer within {timeout:g} s"
    else:
        with response:
            cancel.attach(getattr(getattr(response.raw, "connection", None), "sock", None))
            if response.status_code >= 400:
                reason = _refusal(response)
            else:
                lines = ProgressLines(report, clock)
                try:
                    for message in messages(_stream(response, deadline, clock)):
                        reason = lines.feed(message)
                        if reason is not None:
                            break
                except _TimedOut:
                    reason = f"the pull did not finish within {timeout:g} s"
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    if cancel.cancelled:
                        raise PullCancelled(f"the pull of {name} was given up") from None
                    raise requests.exceptions.ConnectionError(exc) from None  # the engine went away
    if cancel.cancelled:
        raise PullCancelled(f"the pull of {name} was given up")
    if reason is None:
        return PullResult(name, pulled=True)
    try:
        api.inspect_image(name)
    except ImageNotFound:
        raise PullFailed(f"image {name} could not be pulled ({reason}) and is not on this node") from None
    log.warning("image not pulled; using the local copy", image=name, reason=reason)
    report(f"Image {name} could not be pulled ({reason}); using the local copy")
    return PullResult(name, pulled=False, reason=reason)


@dataclass
class _Flight:
    """One pull under way, and the consoles of the starts waiting for it."""

    notes: list[Callable[[str], None]] = field(default_factory=list)
    cancel: PullCancel = field(default_factory=PullCancel)
    task: asyncio.Future[PullResult] = field(init=False)  # set as soon as the flight is made

    def tell(self, line: str) -> None:
        for note in list(self.notes):
            note(line)


class ImagePuller:
    """The Docker runtime's pulls, on the event loop. Each runs in the runtime's executor (`run`:
    its `_call`, which also turns an unreachable engine into RuntimeUnavailable), at most half
    its threads at a time, so that kills and inspections always find one free. Starts of the
    same image at the same time share one pull, and each of their consoles hears it."""

    def __init__(
        self,
        run: Callable[[Callable[[DockerAPI], PullResult]], Awaitable[PullResult]],
        docker_config: DockerConfig,
        max_workers: int,
    ):
        self._run = run
        self._config = docker_config
        self._slots = asyncio.Semaphore(max(1, max_workers // 2))
        self._flights: dict[str, _Flight] = {}

    async def ensure(self, image: str, note: Callable[[str], None]) -> PullResult:
        """Pull `image` for a start whose console hears `note`, in Wings' words: the first line,
        the pull's progress, the last line once the start can go on. Raises PullFailed (or the
        runtime's errors) when it cannot."""
        if local_only(image):
            return PullResult(local_name(image), pulled=False)
        flight = self._flights.get(image)
        if flight is None:
            flight = self._flights[image] = _Flight()
            flight.task = asyncio.ensure_future(self._pull(image, flight))
            flight.task.add_done_callback(lambda t: t.cancelled() or t.exception())  # nobody may be left to ask
        note(PULL_STARTED)
        flight.notes.append(note)
        try:
            result = await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            if flight.notes == [note]:  # the last start that wanted it is gone: so is the pull
                flight.cancel.cancel()
                if self._flights.get(image) is flight:
                    del self._flights[image]  # a start that comes now pulls afresh
            raise
        finally:
            flight.notes.remove(note)
        note(PULL_FINISHED)
        return result

    async def _pull(self, image: str, flight: _Flight) -> PullResult:
        loop = asyncio.get_running_loop()

        def report(line: str) -> None:  # in the worker thread; lines keep their order on the loop
            loop.call_soon_threadsafe(flight.tell, line)

        try:
            async with self._slots:
                if flight.cancel.cancelled:
                    raise PullCancelled(f"the pull of {image} was given up")
                return await self._run(lambda api: pull(api, image, self._config, report, flight.cancel))
        finally:
            if self._flights.get(image) is flight:
                del self._flights[image]
