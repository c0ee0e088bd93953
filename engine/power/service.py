"""Power operations: start, stop, restart and kill under a per-server lock, with recorded outcomes.

Every accepted request is an *operation*: `power.requested` is durable before the caller is
answered, then a background task takes the lock (waiting up to `wait_seconds`), records
`power.started`, does the work and records exactly one outcome. `kill` does not wait for the lock:
it cancels a start or restart in flight, and any start or restart still waiting for the lock
(each recorded as cancelled by the kill), then SIGKILLs now: the server does not come back up
behind the operator's back.

State changes go through `transition()`, which checks the statechart before it appends and lets
the registry fire the machine after the commit. Once a request is accepted, its events must reach
the log: appends retry while the store is unavailable (disk full), rather than leave an operation
without an outcome or a state that disagrees with the process.
"""
from __future__ import annotations

import asyncio
import uuid as uuidlib
from dataclasses import dataclass

import structlog

from engine.power.console import DoneMatcher
from engine.environments.base import EnvironmentError_, ExitInfo, ProcessHandle, Runtime
from engine.events import (
    ACTIONS, Event, Metadata, NewEvent, PowerCancelled, PowerFailed, PowerRejected, PowerRequested,
    PowerStarted, PowerSucceeded, PrebootCheckFailed, ProcessExited, ProcessStarted, StateChanged,
    StopTimedOut,
)
from engine.preboot.checks import PrebootFailure
from engine.power.processes import ProcessTracker
from engine.servers.registry import ServerRegistry
from engine.servers.fold import Operation
from engine.store.event_store import EventStore, StoreUnavailable

log = structlog.get_logger("wingman.power")

DEFAULT_WAIT = 30
MAX_WAIT = 300
SUSPENDED_MESSAGE = "Cannot start or restart a server that is suspended."
SHUTDOWN_STOP_LIMIT = 20.0  # seconds a local server gets to stop when the daemon shuts down
PREEMPTIBLE = ("start", "restart")  # what a kill cancels
RETRY_MAX = 5.0  # seconds between tries of an append while the store is unavailable


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
        self.processes = ProcessTracker(self._record_exit)
        self._locks: dict[str, asyncio.Lock] = {}
        self._mutexes: dict[str, asyncio.Lock] = {}
        self._current: dict[str, _Running] = {}  # the operation holding each server's lock
        self._waiting: dict[str, dict[str, str]] = {}  # server -> {operation: action} waiting for the lock
        self._preempted: dict[str, str] = {}  # cancelled operation -> the kill that cancelled it
        self._tasks: set[asyncio.Task] = set()

    # -- requests ------------------------------------------------------------------------------

    async def request(self, uuid: str, action: str, wait_seconds: int | None, meta: Metadata) -> Operation:
        """Record the request (durably: StoreUnavailable goes to the caller) and start the
        operation in the background."""
        if action not in ACTIONS:
            raise ValueError(f"unknown power action {action!r}")
        view = self.registry.get(uuid)
        op_id = str(uuidlib.uuid4())
        wait = normalize_wait(wait_seconds)
        meta = meta.model_copy(update={"operation_id": op_id})
        records: list[Event] = [PowerRequested(operation_id=op_id, action=action, wait_seconds=wait)]
        suspended = action in PREEMPTIBLE and view.suspended
        if suspended:
            records.append(PowerRejected(operation_id=op_id, action=action, reason=SUSPENDED_MESSAGE))
        await self.store.append(uuid, [NewEvent.of(r, meta) for r in records])
        op = self.registry.operation_in_memory(op_id)
        if suspended:
            raise SuspendedServer(op)
        self.background(self._run(uuid, op_id, action, wait, meta), name=f"power-{action}-{op_id}")
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
        waiting = self._waiting.setdefault(uuid, {})
        waiting[op_id] = action
        try:
            acquired = await _acquire(lock, wait)
        finally:
            waiting.pop(op_id, None)
        by = self._preempted.pop(op_id, None)
        if by is not None or not acquired:
            try:
                if by is not None:  # a kill came while this waited: it must not bring the server back
                    outcome: Event = PowerCancelled(operation_id=op_id, action=action, cancelled_by=by,
                                                    reason="cancelled by a kill while waiting for the lock")
                else:
                    outcome = PowerRejected(operation_id=op_id, action=action, reason=(
                        f"another power action holds the server's lock; gave up after waiting {wait} s"))
                await self._record(uuid, outcome, meta)
            finally:
                if acquired:
                    lock.release()
            return
        try:
            self._current[uuid] = _Running(op_id, action, asyncio.current_task())
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
        await self._record(uuid, outcome, meta)

    # -- recording -----------------------------------------------------------------------------

    async def _record(self, uuid: str, record: Event, meta: Metadata) -> None:
        await self._append(uuid, (record,), meta)

    async def _append(self, uuid: str, records: tuple[Event, ...], meta: Metadata) -> None:
        """Append, retrying while the store is unavailable: these events follow an accepted
        request, so giving up would leave the log disagreeing with what happened."""
        delay = 0.1
        while True:
            try:
                await self.store.append(uuid, [NewEvent.of(r, meta) for r in records])
                return
            except StoreUnavailable as exc:
                if delay == 0.1:
                    log.error("event store unavailable; retrying until it takes the events", server=uuid,
                              reason=str(exc), types=[r.type for r in records])
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def transition(self, uuid: str, trigger: str, cause: str, meta: Metadata, op_id: str | None = None,
                         before: tuple[Event, ...] = ()) -> bool:
        """Append a legal state change (with `before` events in the same commit); False if the
        statechart does not allow `trigger` now (then only `before` is written)."""
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

    async def _record_exit(self, uuid: str, info: ExitInfo, cause: str, op_id: str | None) -> None:
        meta = Metadata(actor="daemon", channel="internal", operation_id=op_id, cause=cause)
        exited = ProcessExited(exit_code=info.exit_code, signal=info.signal, oom_killed=info.oom_killed, reason=info.reason)
        await self.transition(uuid, "exited", cause, meta, op_id, before=(exited,))

    # -- the actions ---------------------------------------------------------------------------

    async def _start(self, uuid: str, op_id: str, meta: Metadata) -> str:
        if not self.registry.machine.can_fire(uuid, "start"):
            raise Rejected(f"server is {self.registry.machine.state(uuid)}")
        await self.transition(uuid, "start", meta.cause or "operator", meta, op_id)
        handle: ProcessHandle | None = None
        try:
            prepared = await self.starter.prepare(uuid, op_id, meta)
            matcher = DoneMatcher(prepared.spec.config.done, prepared.spec.config.strip_ansi)
            ready, sink = self.processes.readiness(uuid, matcher)
            launch = asyncio.create_task(self.starter.launch(prepared, sink))
            try:
                handle = await asyncio.shield(launch)
            except asyncio.CancelledError:
                handle = await _result_or_none(launch)  # a kill came: let it see the process
                if handle is not None:
                    self.processes.track(uuid, handle)
                raise
            self.processes.expect_exit(uuid, "exited", op_id)  # an exit before ready is this start's
            self.processes.track(uuid, handle)
            await self._record(uuid, ProcessStarted(runtime=handle.runtime, pid=handle.pid,
                                                    container_id=handle.container_id, adopted=handle.adopted), meta)
            if matcher.empty or handle.adopted:
                ready.set()
            exited = self.processes.watcher(uuid)
            readiness = asyncio.create_task(ready.wait())
            try:
                await asyncio.wait([readiness, exited], return_when=asyncio.FIRST_COMPLETED)
            finally:
                readiness.cancel()
            if not ready.is_set():
                raise Failed(f"the server process exited before it was ready ({_describe_exit(exited.result())})")
            self.processes.forget_exit(uuid, op_id)
            if not await self.transition(uuid, "ready", "process_ready", meta, op_id):
                raise Failed("the server's state changed before it was ready")
            return self.registry.machine.state(uuid)  # the state `ready` led to, as power.yaml names it
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
        handle = self.processes.handle(uuid)
        if handle is None:
            # Nothing runs: a state left behind (should not happen after boot recovery) is closed.
            await self.transition(uuid, "exited", "no_process", meta, op_id)
            return "the server was not running"
        await self.stop_process(uuid, handle, self.registry.config(uuid).stop_timeout, "stopped", meta, op_id)
        return "stopped"

    async def stop_process(self, uuid: str, handle: ProcessHandle, timeout: float, cause: str,
                           meta: Metadata, op_id: str | None = None) -> None:
        """The configured stop, then SIGKILL after `timeout`; returns once the exit is recorded."""
        config = self.registry.config(uuid)
        await self.transition(uuid, "stop", meta.cause or cause, meta, op_id)
        self.processes.expect_exit(uuid, cause, op_id)
        try:
            if config.stop_type == "command":
                await handle.send_command(config.stop_value or "stop")
            elif config.stop_type == "native":
                await handle.native_stop()
            else:
                await handle.send_signal(config.stop_value or "SIGTERM")
        except EnvironmentError_ as exc:
            log.warning("stop could not be delivered; killing", server=uuid, reason=str(exc))
            await handle.kill()
        try:
            await asyncio.wait_for(self.processes.exited(uuid), timeout)
        except TimeoutError:
            await self._record(uuid, StopTimedOut(operation_id=op_id, timeout_seconds=timeout), meta)
            await handle.kill()
        await self.processes.exited(uuid)

    async def _restart(self, uuid: str, op_id: str, meta: Metadata) -> str:
        if not self.registry.machine.can_fire(uuid, "start"):
            await self._stop(uuid, op_id, meta)
        return await self._start(uuid, op_id, meta)

    async def _kill(self, uuid: str, op_id: str, meta: Metadata) -> str:
        for waiting, action in self._waiting.get(uuid, {}).items():
            if action in PREEMPTIBLE:
                self._preempted.setdefault(waiting, op_id)
        running = self._current.get(uuid)
        if running and running.action in PREEMPTIBLE and not running.task.done():
            self._preempted[running.operation_id] = op_id
            running.task.cancel()
            await asyncio.wait([running.task])
        handle = self.processes.handle(uuid)
        if handle is not None:
            self.processes.expect_exit(uuid, "killed", op_id)
            await handle.kill()
            await self.processes.exited(uuid)
            return "killed"
        if await self.transition(uuid, "abort", "killed", meta, op_id):
            return "start aborted"
        return "the server was not running"

    async def delete_server(self, uuid: str, meta: Metadata) -> None:
        """Forget a server that is down: its runtime leftovers go, its history stays in the log.
        Raises Rejected while it runs or a power action holds its lock."""
        view = self.registry.get(uuid)
        lock = self._locks.setdefault(uuid, asyncio.Lock())
        if not await _try_acquire(lock):
            raise Rejected("a power action is in progress; kill or wait for it before deleting the server")
        try:
            if view.state != self.chart.initial or self.processes.handle(uuid) is not None:
                raise Rejected(f"the server is {view.state}; stop or kill it before deleting it")
            runtime = self.runtimes.get(view.config.runtime) if view.config else None
            if runtime is not None:
                await runtime.destroy(view.config)
            await self.registry.delete(uuid, meta)
        finally:
            lock.release()

    # -- lifecycle -----------------------------------------------------------------------------

    def background(self, coro, name: str) -> asyncio.Task:
        """A task the daemon owns: cancelled at shutdown."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
        stops = [
            self.stop_process(uuid, handle, min(self.registry.config(uuid).stop_timeout, stop_limit),
                              "daemon_shutdown", meta)
            for uuid, handle in self.processes.running() if handle.runtime not in detachable
        ]
        for result in await asyncio.gather(*stops, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("could not stop a server at shutdown", error=str(result))
        await self.processes.close()


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
