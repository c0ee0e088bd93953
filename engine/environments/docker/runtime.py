"""The Docker runtime: one container per server, driven through the blocking `docker` SDK.

Threads stay bounded whatever the number of servers (the target is hundreds of containers with
the daemon responsive):

- Control calls (inspect, create, attach handshake, start, kill, remove) run in this runtime's own
  ThreadPoolExecutor of `max_workers` threads, never in the loop's default executor, and never for
  long: Docker's `stop` (which blocks for the whole stop timeout) is done as signal + event-driven
  wait + SIGKILL by the power engine instead (see DockerHandle.native_stop).
- Exits are watched through ONE events stream read by one thread (watcher.py); `die`/`oom`/
  `destroy` events reach the loop, where the container's handle checks its state. When the
  engine comes back, every live handle checks its container (exits missed while away are found
  by inspection) and consoles of containers that survived are re-attached.
- Console (attach.py, handle.py): the attach connection is hijacked by the SDK in a worker thread
  (HTTP upgrade), then the plain socket is set non-blocking and read by the event loop (`loop.sock_recv`) and written
  for stdin (`loop.sock_sendall`): no thread per container. Bytes the SDK had already buffered
  past the HTTP headers are kept. A new container is attached *before* it is started so no output
  is lost. The end of the attach stream is a second, independent exit signal (it triggers the
  same state check as a `die` event), so an exit is seen even if the events stream lags.
- Image pulls (images.py, at each start, as Wings) are the one long call in the executor: at
  most half its threads pull at a time, so kills and inspections always find one.
- A stopped container stays until its server next starts (for inspection, as in Wings); the
  start removes it while pre-boot runs (clearing.py), and the launch waits for that.

Only `unix://` and plain `tcp://` engines are supported for attach (the socket is used raw).
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, TypeVarTuple

import docker
import requests
import structlog
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from wingman.engine.config_docker import DockerConfig
from wingman.engine.environments.base import (
    ConsoleSink,
    ExitInfo,
    LaunchSpec,
    ProcessHandle,
    Runtime,
    RuntimeFailure,
    RuntimeUnavailable,
    StartedData,
)
from wingman.engine.environments.docker.attach import take_attach_socket
from wingman.engine.environments.docker.clearing import OldContainers, clear
from wingman.engine.environments.docker.found import ContainerFacts, reap, running_to_adopt, wingman_containers
from wingman.engine.environments.docker.handle import DockerHandle
from wingman.engine.environments.docker.images import ImagePuller, local_name
from wingman.engine.environments.docker.limits import container_resources, discarded, unenforced
from wingman.engine.environments.docker.network import Networks
from wingman.engine.environments.docker.sdk import (
    ContainerInspect,
    ContainerStatus,
    DockerAPI,
    DockerEvent,
    ImageConfig,
)
from wingman.engine.environments.docker.spec import (
    ATTACH,
    container_name,
    container_spec,
    image_config,
    missing_image,
    quiet,
    server_image,
)
from wingman.engine.environments.docker.watcher import EventsWatcher
from wingman.engine.servers.definition import ServerConfig

log = structlog.get_logger("wingman.docker")

REQUEST_TIMEOUT = 60  # seconds for one control call; a hung engine surfaces as unavailable

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
# A launch's worker thread hands back: the container's state, attach socket, bytes read, adopted.
Launched: TypeAlias = tuple[ContainerInspect, socket.socket, bytes, bool]


class DockerRuntime(Runtime):
    kind = "docker"
    detachable = True  # containers outlive the daemon and are adopted at the next boot

    def __init__(self, base_url: str | None = None, docker_config: DockerConfig | None = None, max_workers: int = 8):
        # docker 7.2 follows the CLI's current context unless told where to go: always pass it.
        self.base_url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.docker_config = docker_config or DockerConfig.model_validate({})  # every default
        self.networks = Networks(self.docker_config)  # made when missing, once (installers join it too)
        self.max_workers = max_workers
        self.unavailable: str | None = None  # why the engine does not answer; None when it does
        self.closing = False
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="wingman-docker")
        self._api: DockerAPI | None = None
        self._api_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handles: dict[str, DockerHandle] = {}  # container id -> live handle
        self._watcher: EventsWatcher | None = None
        self._launches: set[asyncio.Future[Any]] = set()  # launch calls (and their clean-ups) in the executor
        self._old = OldContainers(self._clear)  # old containers removed while pre-boot runs
        self._images = ImagePuller(self._call, self.docker_config, max_workers)  # pulls, as Wings at each start
        self._info: dict[str, object] | None = None
        self._image_configs: dict[str, ImageConfig] = {}  # uuid -> its image's Config, from pre-boot to launch
        self._discarded: set[str] = set()  # resources the engine dropped from a create (limits.discarded)

    # -- connection --------------------------------------------------------------------------
    def _client(self) -> DockerAPI:
        # The SDK has no types: its client is taken as what engine.environments.docker.sdk says of it.
        client: DockerAPI = docker.APIClient(
            base_url=self.base_url, version="auto", timeout=REQUEST_TIMEOUT, max_pool_size=self.max_workers + 2
        )
        return client

    def _ensure_api(self) -> DockerAPI:
        with self._api_lock:
            if self._api is None:
                try:
                    self._api = self._client()
                except DockerException as exc:
                    raise self._unavailable_error(exc) from None
            return self._api

    def _unavailable_error(self, exc: BaseException) -> RuntimeUnavailable:
        found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
        why = (
            found[-1].strip()
            if found
            else ("timed out" if isinstance(exc, requests.exceptions.Timeout) else str(exc) or type(exc).__name__)
        )
        err = RuntimeUnavailable(f"the Docker engine at {self.base_url} is not reachable ({why})")
        self.unavailable = str(err)
        return err

    def _invoke(self, fn: Callable[[DockerAPI, *Ts], T], *args: *Ts) -> T:
        """In a worker thread: run one SDK call, turning 'cannot reach the engine' into
        RuntimeUnavailable and any refusal `fn` did not explain itself into RuntimeFailure."""
        api = self._ensure_api()
        try:
            result = fn(api, *args)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise self._unavailable_error(exc) from None
        except APIError as exc:
            raise RuntimeFailure(f"the Docker engine refused: {exc.explanation or exc}") from None
        self.unavailable = None
        return result

    async def _call(self, fn: Callable[[DockerAPI, *Ts], T], *args: *Ts) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(self._invoke, fn, *args))

    async def open(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        try:
            await self._call(lambda api: api.ping())
        except RuntimeUnavailable as exc:
            log.warning("docker engine not reachable; docker servers cannot start until it is", error=str(exc))
        self._watcher = EventsWatcher(self._client, loop, self._on_event, self._on_subscribed, self._on_lost)
        self._watcher.start()

    async def close(self) -> None:
        """Stop watching and reading consoles; containers are left running (adopted next boot)."""
        self.closing = True
        await self.settle()  # a launch cancelled just before shutdown still gets its container killed
        if self._watcher is not None:
            self._watcher.stop()
        for handle in list(self._handles.values()):
            handle.detach()
        if self._watcher is not None and self._loop is not None:  # opened: the watcher is the loop's
            await self._loop.run_in_executor(self._pool, self._watcher.join, 10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._api is not None:
            self._api.close()

    # -- what the events watcher reports ------------------------------------------------
    def _on_subscribed(self) -> None:
        self.unavailable = None
        for handle in list(self._handles.values()):
            handle.schedule_check()

    def _on_lost(self, why: BaseException | str) -> str:
        """In the watcher's thread: remember why the engine does not answer; the words back."""
        if isinstance(why, BaseException):
            return str(self._unavailable_error(why))
        self.unavailable = self.unavailable or f"the Docker engine at {self.base_url} went away ({why})"
        return why

    def _on_event(self, event: DockerEvent) -> None:
        handle = self._handles.get(event.get("id", ""))
        if handle is not None:
            action = event.get("Action") or event.get("status") or ""
            handle.on_event(action, (event.get("Actor") or {}).get("Attributes") or {})

    # -- handles ---------------------------------------------------------------------------
    def _register(
        self, state: ContainerInspect, sock: socket.socket, leftover: bytes, console: ConsoleSink, adopted: bool
    ) -> DockerHandle:
        handle = DockerHandle(self, state, console, adopted)
        self._handles[handle.container_id] = handle
        handle.start_console(sock, leftover)
        return handle

    def forget(self, handle: DockerHandle) -> None:
        if self._handles.get(handle.container_id) is handle:
            del self._handles[handle.container_id]

    async def container_state(self, container_id: str) -> ContainerStatus | None:
        """The container's `State` (inspect), or None when it no longer exists."""

        def inspect(api: DockerAPI) -> ContainerStatus | None:
            try:
                return api.inspect_container(container_id)["State"]
            except NotFound:
                return None

        return await self._call(inspect)

    async def signal(self, container_id: str, signame: str) -> None:
        def kill(api: DockerAPI) -> None:
            try:
                api.kill(container_id, signal=signame)
            except NotFound:
                pass  # removed: wait() resolves with "container removed"
            except APIError as exc:
                if exc.status_code != 409:  # 409: not running any more, the exit is on its way
                    raise RuntimeFailure(f"Docker could not signal the container: {exc.explanation}") from None

        await self._call(kill)

    async def reattach(self, handle: DockerHandle) -> None:
        try:
            sock, leftover = await self._call(
                lambda api: take_attach_socket(api.attach_socket(handle.container_id, ATTACH))
            )
        except RuntimeUnavailable:
            raise
        except RuntimeFailure as exc:  # it stopped meanwhile: its `die` event triggers a check
            log.info("console not re-attached", container=handle.name, error=str(exc))
            return
        if handle.alive:
            handle.start_console(sock, leftover)
            log.info("console re-attached", container=handle.name)
        else:
            sock.close()

    # -- the Runtime protocol --------------------------------------------------------------
    async def clear_for_launch(self, config: ServerConfig) -> None:
        """See engine.environments.docker.clearing: the old container goes while pre-boot runs."""
        self._old.clear(container_name(config.uuid))

    async def prepare(self, spec: LaunchSpec, note: ConsoleSink) -> None:
        await self._images.ensure(server_image(spec.config), note)  # engine.environments.docker.images

    async def check_limits(self, spec: LaunchSpec) -> list[str]:
        """The image is there (its Config, which decides the command, is kept for the launch) and
        the engine can apply the limits (engine.environments.docker.limits.unenforced)."""
        image = server_image(spec.config)

        def check(api: DockerAPI) -> tuple[ImageConfig, dict[str, object]]:
            try:
                found = image_config(api, local_name(image))
            except ImageNotFound:
                raise RuntimeFailure(missing_image(image)) from None
            if self._info is None:
                self._info = api.info()
            return found, self._info

        self._image_configs[spec.config.uuid], info = await self._call(check)
        resources = container_resources(spec.config, self.docker_config)
        return unenforced(spec.config, resources, info, self._discarded)

    async def launch(self, spec: LaunchSpec, console: ConsoleSink) -> ProcessHandle:
        server_image(spec.config)
        await self._old.cleared(container_name(spec.config.uuid))
        image = self._image_configs.pop(spec.config.uuid, None)  # its Config, inspected by pre-boot
        fut = asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(self._invoke, self._launch_blocking, spec, image)
        )
        self._track(fut)
        try:
            state, sock, leftover, adopted = await asyncio.shield(fut)
        except asyncio.CancelledError:
            # Cancelled (a kill preempting the start) while Docker may still be starting it: once
            # the call is done, make sure the container does not run behind the operator's back.
            fut.add_done_callback(self._kill_abandoned)
            raise
        handle = self._register(state, sock, leftover, console, adopted)
        if not state["State"].get("Running"):  # exited before we registered: no event will say so
            handle.schedule_check()
        return handle

    def _kill_abandoned(self, fut: asyncio.Future[Launched]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        state, sock, _, _ = fut.result()
        sock.close()
        try:
            self._track(asyncio.wrap_future(self._pool.submit(self._invoke, lambda api: quiet(api.kill, state["Id"]))))
        except RuntimeError:  # the runtime is closing: nothing left to do it with
            log.warning("a cancelled launch left its container running", container=state["Name"])

    def _clear(self, name: str) -> asyncio.Future[None]:
        fut = asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(self._invoke, clear, name))
        self._track(fut)  # a shutdown's settle() waits for it too
        return fut

    def _track(self, fut: asyncio.Future[Any]) -> None:
        self._launches.add(fut)
        fut.add_done_callback(self._launches.discard)

    async def settle(self) -> None:
        """Wait until no launch is still running in the executor, including launches whose start
        was cancelled, and until the containers those left behind are killed."""
        while self._launches:
            await asyncio.wait(set(self._launches))

    def _launch_blocking(self, api: DockerAPI, spec: LaunchSpec, image: ImageConfig | None) -> Launched:
        cfg = spec.config
        name = container_name(cfg.uuid)
        try:
            current = api.inspect_container(name)
        except NotFound:
            current = None
        if current is not None and current["State"].get("Running"):
            sock, leftover = take_attach_socket(api.attach_socket(current["Id"], ATTACH))
            return current, sock, leftover, True
        try:
            if current is not None:
                api.remove_container(current["Id"], force=True)
            kwargs = container_spec(api, spec, self.docker_config, image)
            created = self.networks.create_container(api, kwargs, cfg)
        except ImageNotFound:
            raise RuntimeFailure(missing_image(cfg.image)) from None
        except APIError as exc:
            raise RuntimeFailure(f"Docker could not create the container {name}: {exc.explanation}") from None
        cid = created["Id"]
        for warning in created.get("Warnings") or []:  # e.g. a limit the kernel cannot apply, dropped
            log.warning("the Docker engine warned creating the container", server=cfg.uuid, warning=warning)
        # Attach before start: output from the first byte on is in the socket when we read it.
        sock, leftover = take_attach_socket(api.attach_socket(cid, ATTACH))
        try:
            self.networks.start_container(api, cid, cfg)  # a port taken on the host: its allocation named
            state = api.inspect_container(cid)
        except APIError as exc:
            sock.close()
            raise RuntimeFailure(f"Docker could not start the container {name}: {exc.explanation}") from None
        except BaseException:
            sock.close()
            raise
        # What it dropped is said at the next pre-boots (check_limits), before the create.
        self._discarded |= discarded(container_resources(cfg, self.docker_config), state["HostConfig"])
        return state, sock, leftover, False

    async def destroy(self, config: ServerConfig) -> list[str]:
        name = container_name(config.uuid)
        await self._old.cleared(name)

        def remove(api: DockerAPI) -> list[str]:
            try:
                api.remove_container(name, force=True)  # forced: Wings' Destroy kills a running one too
            except NotFound:
                return []
            return [f"container {name}"]

        return await self._call(remove)

    async def adopt(
        self, config: ServerConfig, folder: Path, console: ConsoleSink, last_started: StartedData | None = None
    ) -> ProcessHandle | None:
        found = await self._call(running_to_adopt, container_name(config.uuid))
        if found is None:
            return None
        return self._register(*found, console, adopted=True)

    async def reap_orphan(self, config: ServerConfig, last_started: StartedData) -> ExitInfo | None:
        return await self._call(reap, container_name(config.uuid), (last_started or {}).get("container_id"))

    async def container_states(self) -> dict[str, ContainerFacts]:
        """uuid -> {"running", "exit_code", "oom_killed"} for every wingman container, for the
        engine's reconciliation after the engine comes back."""
        found = await self._call(wingman_containers)
        stopped = [s for s in found.values() if not s["running"]]
        details = await asyncio.gather(*(self.container_state(s["id"]) for s in stopped))
        for entry, state in zip(stopped, details, strict=False):
            if state is not None:
                entry["exit_code"] = state.get("ExitCode")
                entry["oom_killed"] = bool(state.get("OOMKilled"))
        for entry in found.values():
            del entry["id"]
        return found
