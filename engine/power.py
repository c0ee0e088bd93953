"""Power operations: start, stop, restart and kill under a per-server lock, with recorded outcomes.

Every accepted request is an *operation*: `power.requested` is durable before the caller is
answered, then a background task takes the lock (waiting up to `wait_seconds`), records
`power.started`, does the work and records exactly one outcome. `kill` does not wait for the lock:
it cancels a start or restart in flight (recorded as cancelled by the kill) and SIGKILLs now.

State changes go through `transition()`, which checks the statechart before it appends and lets
the registry fire the machine after the commit. Process exits are recorded by one watcher per
running process; stop and kill wait for that watcher, so their outcome follows the exit event.
"""
from __future__ import annotations

import asyncio
import uuid as uuidlib
from dataclasses import dataclass

import structlog

from engine.console import ConsoleBuffer, DoneMatcher
from engine.environments.base import EnvironmentError_, ExitInfo, ProcessHandle, Runtime
from engine.events import (
    ACTIONS, Event, Metadata, NewEvent, PowerCancelled, PowerFailed, PowerRejected, PowerRequested,
    PowerStarted, PowerSucceeded, PrebootCheckFailed, ProcessExited, ProcessStarted, StateChanged,
    StopTimedOut,
)
from engine.preboot import PrebootFailure
from engine.registry import ServerRegistry
from engine.servers import Operation
from engine.statechart import IllegalTransition
from engine.store import EventStore

log = structlog.get_logger("wingman.power")

DEFAULT_WAIT = 30
MAX_WAIT = 300
SUSPENDED_MESSAGE = "Cannot start or restart a server that is suspended."
SHUTDOWN_STOP_LIMIT = 20.0  # seconds a local server gets to stop when the daemon shuts down


def normalize_wait(value: int | None) -> int:
    """Wings: 30 seconds when absent or outside 0..300."""
    if value is None or value < 0 or value > MAX_WAIT:
        return DEFAULT_WAIT
    return value


class Rejected(Exception):
    """The action cannot run in the server's current situation; recorded as `power.rejected`."""


class Failed(Exception):
    """The action ran and did not reach its goal; recorded as `power.failed`."""


class SuspendedServer(Exception):
    def __init__(self, operation: Operation):
        super().__init__(SUSPENDED_MESSAGE)
        self.operation = operation


@dataclass
class _Running:
    operation_id: str
    action: str
    task: asyncio.Task


class PowerService:
    def __init__(self, store: EventStore, registry: ServerRegistry, runtimes: dict[str, Runtime], starter):
        self.store = store
        self.registry = registry
        self.chart = registry.machine.chart
        self.runtimes = runtimes
        self.starter = starter  # engine.starter.Starter: pre-boot (raises PrebootFailure) and launch
        self.consoles: dict[str, ConsoleBuffer] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._mutexes: dict[str, asyncio.Lock] = {}
        self._handles: dict[str, ProcessHandle] = {}
        self._watchers: dict[str, asyncio.Task] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._exit_cause: dict[str, tuple[str, str | None]] = {}
        self._current: dict[str, _Running] = {}
        self._preempted: dict[str, str] = {}  # cancelled operation -> the kill that cancelled it
        self._tasks: set[asyncio.Task] = set()

    # -- requests ------------------------------------------------------------------------------

    async def request(self, uuid: str, action: str, wait_seconds: int | None, meta: Metadata) -> Operation:
        """Record the request (durably) and start the operation in the background."""
        if action not in ACTIONS:
            raise ValueError(f"unknown power action {action!r}")
        view = self.registry.get(uuid)
        op_id = str(uuidlib.uuid4())
        wait = normalize_wait(wait_seconds)
        meta = meta.model_copy(update={"operation_id": op_id})
        records: list[Event] = [PowerRequested(operation_id=op_id, action=action, wait_seconds=wait)]
        suspended = action in ("start", "restart") and view.suspended
        if suspended:
            records.append(PowerRejected(operation_id=op_id, action=action, reason=SUSPENDED_MESSAGE))
        await self.store.append(uuid, [NewEvent.of(r, meta) for r in records])
        op = view.operations[op_id]
        if suspended:
            raise SuspendedServer(op)
        task = asyncio.create_task(self._run(uuid, op_id, action, wait, meta), name=f"power-{action}-{op_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return op

    async def _run(self, uuid: str, op_id: str, action: str, wait: int, meta: Metadata) -> None:
        lock = self._locks.setdefault(uuid, asyncio.Lock())
        if action == "kill":
            acquired = await _try_acquire(lock)
            try:
                await self._record(uuid, PowerStarted(operation_id=op_id, action=action, lock_acquired=acquired), meta)
                await self._outcome(uuid, op_id, action, meta, self._kill(uuid, op_id, meta))
            finally:
                if acquired:
                    lock.release()
            return
        if not await _acquire(lock, wait):
            reason = f"another power action holds the server's lock; gave up after waiting {wait} s"
            await self._record(uuid, PowerRejected(operation_id=op_id, action=action, reason=reason), meta)
            return
        self._current[uuid] = _Running(op_id, action, asyncio.current_task())
        try:
            await self._record(uuid, PowerStarted(operation_id=op_id, action=action), meta)
            work = {"start": self._start, "stop": self._stop, "restart": self._restart}[action]
            await self._outcome(uuid, op_id, action, meta, work(uuid, op_id, meta))
        finally:
            self._current.pop(uuid, None)
            lock.release()

    async def _outcome(self, uuid: str, op_id: str, action: str, meta: Metadata, work) -> None:
        try:
            detail = await work
            outcome: Event = PowerSucceeded(operation_id=op_id, action=action, detail=detail)
        except Rejected as exc:
            outcome = PowerRejected(operation_id=op_id, action=action, reason=str(exc))
        except Failed as exc:
            outcome = PowerFailed(operation_id=op_id, action=action, reason=str(exc))
        except asyncio.CancelledError:
            by = self._preempted.pop(op_id, None)
            if by is None:  # daemon shutdown: the next boot records it as interrupted
                raise
            outcome = PowerCancelled(operation_id=op_id, action=action, cancelled_by=by, reason="cancelled by a kill")
        except Exception as exc:  # never leave an operation without an outcome
            log.exception("power operation crashed", server=uuid, operation=op_id)
            outcome = PowerFailed(operation_id=op_id, action=action, reason=f"internal error: {exc}")
        try:
            await self._record(uuid, outcome, meta)
        except Exception:
            log.exception("could not record the outcome", server=uuid, operation=op_id)

    # -- recording -----------------------------------------------------------------------------

    async def _record(self, uuid: str, record: Event, meta: Metadata) -> None:
        await self._append(uuid, (record,), meta)

    async def _append(self, uuid: str, records: tuple[Event, ...], meta: Metadata) -> None:
        await self.store.append(uuid, [NewEvent.of(r, meta) for r in records])

    async def transition(self, uuid: str, trigger: str, cause: str, meta: Metadata, op_id: str | None = None,
                         before: tuple[Event, ...] = ()) -> bool:
        """Append a legal state change (with `before` events in the same commit); False if the
        statechart does not allow `trigger` now (nothing is written then)."""
        async with self._mutexes.setdefault(uuid, asyncio.Lock()):
            if not self.registry.machine.can_fire(uuid, trigger):
                if before:
                    await self._append(uuid, before, meta)
                return False
            source = self.registry.machine.state(uuid)
            change = StateChanged(from_state=source, to_state=self.chart.destination(trigger, source),
                                  trigger=trigger, cause=cause, operation_id=op_id)
            await self._append(uuid, (*before, change), meta.model_copy(update={"cause": cause}))
            return True

    # -- the actions ---------------------------------------------------------------------------

    async def _start(self, uuid: str, op_id: str, meta: Metadata) -> str:
        if not self.registry.machine.can_fire(uuid, "start"):
            raise Rejected(f"server is {self.registry.machine.state(uuid)}")
        await self.transition(uuid, "start", "operator", meta, op_id)
        handle: ProcessHandle | None = None
        try:
            prepared = await self.starter.prepare(uuid, op_id, meta)
            ready = self._ready[uuid] = asyncio.Event()
            matcher = DoneMatcher(prepared.spec.config.done, prepared.spec.config.strip_ansi)
            launch = asyncio.create_task(self.starter.launch(prepared, self._console_sink(uuid, matcher)))
            try:
                handle = await asyncio.shield(launch)
            except asyncio.CancelledError:
                handle = await _result_or_none(launch)  # a kill came: let it see the process
                if handle is not None:
                    self._adopt(uuid, handle, meta)
                raise
            self._adopt(uuid, handle, meta)
            await self._record(uuid, ProcessStarted(runtime=handle.runtime, pid=handle.pid,
                                                    container_id=handle.container_id, adopted=handle.adopted), meta)
            if matcher.empty or handle.adopted:
                ready.set()
            exited = self._watchers[uuid]
            readiness = asyncio.create_task(ready.wait())
            try:
                await asyncio.wait([readiness, exited], return_when=asyncio.FIRST_COMPLETED)
            finally:
                readiness.cancel()
            if not ready.is_set():
                raise Failed(f"the server process exited before it was ready ({_describe_exit(exited.result())})")
            if not await self.transition(uuid, "ready", "process_ready", meta, op_id):
                raise Failed("the server's state changed before it was ready")
            return "running"
        except PrebootFailure as exc:
            failed = PrebootCheckFailed(check=exc.check, reason=exc.reason, operation_id=op_id)
            await self.transition(uuid, "abort", "preboot_failed", meta, op_id, before=(failed,))
            raise Failed(str(exc)) from None
        except EnvironmentError_ as exc:
            await self.transition(uuid, "abort", "launch_failed", meta, op_id)
            raise Failed(f"could not launch the server: {exc}") from None
        except asyncio.CancelledError:
            if handle is None:
                await asyncio.shield(self.transition(uuid, "abort", "cancelled", meta, op_id))
            raise

    async def _stop(self, uuid: str, op_id: str, meta: Metadata) -> str:
        handle = self._handles.get(uuid)
        if handle is None or not handle.alive:
            # Nothing runs: a state left behind (should not happen after boot recovery) is closed.
            await self.transition(uuid, "exited", "no_process", meta, op_id)
            return "the server was not running"
        config = self.registry.config(uuid)
        await self._stop_process(uuid, handle, config.stop_timeout, "stopped", meta, op_id)
        return "stopped"

    async def _stop_process(self, uuid: str, handle: ProcessHandle, timeout: float, cause: str,
                            meta: Metadata, op_id: str | None = None) -> None:
        """The configured stop, then SIGKILL after `timeout`; returns once the exit is recorded."""
        config = self.registry.config(uuid)
        await self.transition(uuid, "stop", meta.cause or cause, meta, op_id)
        self._exit_cause[uuid] = (cause, op_id)
        try:
            if config.stop_type == "command":
                await handle.send_command(config.stop_value or "stop")
            elif config.stop_type == "native":
                await handle.native_stop(timeout)
            else:
                await handle.send_signal(config.stop_value or "SIGTERM")
        except EnvironmentError_ as exc:
            log.warning("stop could not be delivered; killing", server=uuid, reason=str(exc))
            await handle.kill()
        try:
            await asyncio.wait_for(asyncio.shield(self._watchers[uuid]), timeout)
        except TimeoutError:
            await self._record(uuid, StopTimedOut(operation_id=op_id, timeout_seconds=timeout), meta)
            await handle.kill()
        await asyncio.shield(self._watchers[uuid])

    async def _restart(self, uuid: str, op_id: str, meta: Metadata) -> str:
        if not self.registry.machine.can_fire(uuid, "start"):
            await self._stop(uuid, op_id, meta)
        return await self._start(uuid, op_id, meta)

    async def _kill(self, uuid: str, op_id: str, meta: Metadata) -> str:
        running = self._current.get(uuid)
        if running and running.action in ("start", "restart") and not running.task.done():
            self._preempted[running.operation_id] = op_id
            running.task.cancel()
            await asyncio.wait([running.task])
        handle = self._handles.get(uuid)
        if handle is not None and handle.alive:
            self._exit_cause[uuid] = ("killed", op_id)
            await handle.kill()
            await asyncio.shield(self._watchers[uuid])
            return "killed"
        if await self.transition(uuid, "abort", "killed", meta, op_id):
            return "start aborted"
        return "the server was not running"

    # -- processes -----------------------------------------------------------------------------

    def console(self, uuid: str) -> ConsoleBuffer:
        return self.consoles.setdefault(uuid, ConsoleBuffer())

    def handle(self, uuid: str) -> ProcessHandle | None:
        h = self._handles.get(uuid)
        return h if h is not None and h.alive else None

    def console_sink_for(self, uuid: str):
        """A console sink with no readiness watch (for adopted servers)."""
        return self.console(uuid).push

    def track(self, uuid: str, handle: ProcessHandle, meta: Metadata) -> None:
        self._adopt(uuid, handle, meta)

    def mark_exit_cause(self, uuid: str, cause: str, op_id: str | None = None) -> None:
        self._exit_cause[uuid] = (cause, op_id)

    def _console_sink(self, uuid: str, matcher: DoneMatcher):
        buffer = self.console(uuid)

        def sink(line: str) -> None:
            buffer.push(line)
            ready = self._ready.get(uuid)
            if ready is not None and not ready.is_set() and matcher.matches(line):
                ready.set()

        return sink

    def _adopt(self, uuid: str, handle: ProcessHandle, meta: Metadata) -> None:
        """Track a running process and record its exit when it comes."""
        self._handles[uuid] = handle
        self._watchers[uuid] = asyncio.create_task(self._watch(uuid, handle, meta), name=f"watch-{uuid}")

    async def _watch(self, uuid: str, handle: ProcessHandle, meta: Metadata) -> ExitInfo:
        info = await handle.wait()
        cause, op_id = self._exit_cause.pop(uuid, ("exited", None))
        exit_meta = Metadata(actor="daemon", channel="internal", operation_id=op_id, cause=cause)
        exited = ProcessExited(exit_code=info.exit_code, signal=info.signal, oom_killed=info.oom_killed, reason=info.reason)
        try:
            await self.transition(uuid, "exited", cause, exit_meta, op_id, before=(exited,))
        except Exception:
            log.exception("could not record a process exit", server=uuid)
        finally:
            if self._handles.get(uuid) is handle:
                del self._handles[uuid]
        return info

    async def shutdown(self, detachable: set[str], stop_limit: float = SHUTDOWN_STOP_LIMIT) -> None:
        """Daemon shutdown. Operations in flight are cancelled without an outcome (the next boot
        records them as interrupted). Servers whose runtime outlives the daemon (`detachable`,
        e.g. Docker) keep running; the others (local processes, whose pipes die with us) get
        their configured stop, bounded by `stop_limit`, so they are not killed blind at the next
        boot."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        meta = Metadata(actor="daemon", channel="internal", cause="daemon_shutdown")
        stops = []
        for uuid, handle in list(self._handles.items()):
            if handle.alive and handle.runtime not in detachable:
                timeout = min(self.registry.config(uuid).stop_timeout, stop_limit)
                stops.append(self._stop_process(uuid, handle, timeout, "daemon_shutdown", meta))
        for result in await asyncio.gather(*stops, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("could not stop a server at shutdown", error=str(result))
        for task in self._watchers.values():
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)


async def _try_acquire(lock: asyncio.Lock) -> bool:
    if lock.locked():
        return False
    await lock.acquire()
    return True


async def _acquire(lock: asyncio.Lock, wait: int) -> bool:
    if await _try_acquire(lock):
        return True
    if wait <= 0:
        return False
    try:
        await asyncio.wait_for(lock.acquire(), wait)
        return True
    except TimeoutError:
        return False


async def _result_or_none(task: asyncio.Task):
    try:
        return await task
    except Exception:
        return None


def _describe_exit(info: ExitInfo) -> str:
    if info.oom_killed:
        return "killed for running out of memory"
    if info.signal:
        return f"killed by {info.signal}"
    if info.reason:
        return info.reason
    return f"exit code {info.exit_code}"
