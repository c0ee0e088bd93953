"""Power operations: start, stop, restart and kill under a per-server lock, each with exactly one
recorded outcome. `power.requested` is durable before the caller is answered; a task then takes
the lock (waiting up to `wait_seconds`), records `power.started`, does the work
(engine.power.actions), and `_run` records the outcome from how the work ended. A kill does not
wait: it cancels the start or restart at work and marks those waiting (engine.power.inflight
holds each operation in flight); one that finds nothing to do is settled in its request's commit.
An operation's work ends at the commit of its `ready` or process exit (`on_commit`), from when
`lock_busy` says no: a Panel acting on the state it was just shown is not refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar, cast

import structlog

from wingman.engine.environments.base import Runtime
from wingman.engine.event_types import Cause, EventType
from wingman.engine.events import (
    ACTIONS,
    Event,
    Metadata,
    PowerAction,
    PowerCancelled,
    PowerFailed,
    PowerRejected,
    PowerRequested,
    PowerStarted,
    PowerSucceeded,
    RecordedEvent,
    new_id,
)
from wingman.engine.power.actions import NOTHING_TO_KILL, PowerActions
from wingman.engine.power.deletion import ServerDeletion
from wingman.engine.power.inflight import PREEMPTIBLE, InFlight, OperationInFlight
from wingman.engine.power.install_door import InstallDoor
from wingman.engine.power.journal import Journal
from wingman.engine.power.outcomes import (
    INSTALLING_MESSAGE,
    SUSPENDED_MESSAGE,
    Failed,
    Rejected,
    ServerInstalling,
    SuspendedServer,
)
from wingman.engine.power.processes import ProcessTracker
from wingman.engine.servers.operations import Operation
from wingman.engine.servers.registry import ServerRegistry
from wingman.engine.statechart import Trigger

log = structlog.get_logger("wingman.power")

DEFAULT_WAIT = 30
MAX_WAIT = 300
SHUTDOWN_STOP_LIMIT = 20.0  # seconds a local server gets to stop when the daemon shuts down
# The committed event that ends each action's work (see the module doc): a process exit, or a
# state change by this trigger.
_WORK_ENDS_WITH: dict[str, str] = {
    "stop": EventType.PROCESS_EXITED,
    "kill": EventType.PROCESS_EXITED,
    "start": Trigger.READY,
    "restart": Trigger.READY,
}
T = TypeVar("T")


class RequestWatcher(Protocol):
    """Told of each power request (the crash handler: an operator's action cancels its pending
    restart). `before` may add events to the request's own commit; `accepted` runs once it is
    durable."""

    def before(self, uuid: str, action: str, meta: Metadata) -> list[Event]: ...

    def accepted(self, uuid: str, action: str, meta: Metadata) -> None: ...


class InstallControl(Protocol):
    """The installs (engine.install): a delete ends the server's install before it kills it."""

    async def cancel(self, uuid: str, reason: str) -> None: ...


class RestoreGate(Protocol):
    """Boot recovery: an operation waits until its server is restored (adopted, reaped)."""

    async def restored(self, uuid: str) -> None: ...

    def is_restored(self, uuid: str) -> bool: ...


def normalize_wait(value: int | None) -> int:
    """Wings: 30 seconds when absent or outside 0..300."""
    if value is None or value < 0 or value > MAX_WAIT:
        return DEFAULT_WAIT
    return value


def power_action(action: str) -> PowerAction:
    if action not in ACTIONS:
        raise ValueError(f"unknown power action {action!r}")
    return cast(PowerAction, action)


class PowerService:
    def __init__(
        self,
        journal: Journal,
        registry: ServerRegistry,
        actions: PowerActions,
        processes: ProcessTracker,
        runtimes: dict[str, Runtime],
    ):
        self.journal = journal
        self.registry = registry
        self.actions = actions
        self.processes = processes
        self.runtimes = runtimes
        self._in_flight = InFlight()
        self._tasks: set[asyncio.Task[Any]] = set()  # the daemon's own background work (operations' are theirs)
        self._watchers: list[RequestWatcher] = []
        self._gate: RestoreGate | None = None
        self._deletion = ServerDeletion(self, folder_of=actions.starter.folder)
        # Which servers install, refused power actions meanwhile (engine.power.install_door).
        self.installs = InstallDoor(registry, self._in_flight)
        self.install_control: InstallControl | None = None  # set by the daemon (engine.install)

    def watch_requests(self, watcher: RequestWatcher) -> None:
        self._watchers.append(watcher)

    def wait_for_restore(self, gate: RestoreGate) -> None:
        """Operations of a server wait until boot recovery has restored it."""
        self._gate = gate

    # -- requests ------------------------------------------------------------------------------

    async def request(
        self, uuid: str, action: str, wait_seconds: int | None, meta: Metadata, for_install: str | None = None
    ) -> Operation:
        """Record the request (durably: StoreUnavailable goes to the caller) and start the
        operation in the background. ServerInstalling while the server installs, but for the
        stop its reinstall asks for itself (`for_install`)."""
        act = power_action(action)
        view = self.registry.get(uuid)
        if self.installs.installing(uuid) and (for_install is None or self.installs.install_of(uuid) != for_install):
            raise ServerInstalling()
        op_id = new_id()
        if for_install is not None:
            self.installs.begin(uuid, for_install, stop_id=op_id)
        wait = normalize_wait(wait_seconds)
        meta = meta.model_copy(update={"operation_id": op_id})
        records: list[Event] = [PowerRequested(operation_id=op_id, action=act, wait_seconds=wait)]
        for watcher in self._watchers:
            records.extend(watcher.before(uuid, act, meta))
        suspended = act in PREEMPTIBLE and view.suspended
        if suspended:
            records.append(PowerRejected(operation_id=op_id, action=act, reason=SUSPENDED_MESSAGE))
        settled_now = act == "kill" and self._nothing_to_kill(uuid)
        in_flight = self._in_flight.begin(uuid, op_id, act)  # in hand from before its request is written
        if settled_now:
            in_flight.take_lock_now()  # idle, just checked: held until the commit, so no start slips in
            records.append(PowerStarted(operation_id=op_id, action=act, lock_acquired=True))
            records.append(PowerSucceeded(operation_id=op_id, action=act, detail=NOTHING_TO_KILL))
        try:
            await self.journal.append_now(uuid, records, meta)
        except BaseException:
            self._in_flight.end(in_flight)
            raise
        finally:
            if settled_now:
                in_flight.release_lock()
        for watcher in self._watchers:
            watcher.accepted(uuid, act, meta)
        op = self.registry.operation_in_memory(op_id)
        if suspended or settled_now:
            self._in_flight.end(in_flight)
        else:
            in_flight.task = asyncio.create_task(self._run(in_flight, wait, meta), name=f"power-{act}-{op_id}")
        if op is None:  # the registry folds every commit before the append returns
            raise RuntimeError(f"operation {op_id} is not in the registry after its commit")
        if suspended:
            raise SuspendedServer(op)
        return op

    def on_commit(self, events: list[RecordedEvent]) -> None:
        """Subscribed to the store: note the operations whose work the commit ended (see the
        module doc)."""
        for ev in events:
            if ev.type == EventType.PROCESS_EXITED:
                ending = ev.type
            elif ev.type == EventType.STATE_CHANGED and ev.data.get("trigger") == Trigger.READY:
                ending = Trigger.READY
            else:
                continue
            table = self._in_flight.find(ev.stream_id)
            running = table.running if table is not None else None
            if (
                running is not None
                and running.id == ev.metadata.get("operation_id")
                and _WORK_ENDS_WITH[running.action] == ending
            ):
                running.work_done = True

    def _nothing_to_kill(self, uuid: str, lock_holder: str | None = None) -> bool:
        """Whether a kill of the server now would find nothing to do (the server restored, no
        process, nothing the chart could abort), the power lock idle or held by `lock_holder`."""
        if self._gate is not None and not self._gate.is_restored(uuid):
            return False
        table = self._in_flight.find(uuid)
        lock = table.lock if table is not None else None
        if lock is not None and not lock.idle and (lock_holder is None or lock.holder != lock_holder or lock.waiting()):
            return False
        # Asked of the chart, not of the server's machine: nothing fires here, and a server only
        # ever killed needs no machine model.
        return self.processes.handle(uuid) is None and not self.registry.chart.allows(
            Trigger.ABORT, self.registry.state(uuid)
        )

    def lock_busy(self, uuid: str) -> bool:
        """Whether an operation holds or waits for the server's power lock with work still to do
        (Wings' websocket refuses a power action at once in that case, rather than queueing it).
        A holder whose work has ended and that only records its outcome does not count: the lock
        is free within moments (see the module doc)."""
        table = self._in_flight.find(uuid)
        if table is None or table.lock.idle:
            return False
        running = table.running
        return running is None or not running.work_done or bool(table.lock.waiting())

    def in_hand(self, operation_id: str) -> bool:
        """Whether this daemon is running the operation (accepted, and its outcome not yet durable)."""
        return self._in_flight.get(operation_id) is not None

    async def settled(self, operation_id: str) -> None:
        """Return once the operation's outcome is durable (at once if it is not in hand)."""
        op = self._in_flight.get(operation_id)
        if op is not None:
            await asyncio.shield(op.settlement)

    async def _run(self, op: OperationInFlight, wait: int, meta: Metadata) -> None:
        uuid, op_id, action = op.server, op.id, op.action
        outcome: Event
        try:
            try:
                outcome = await self._perform(op, wait, meta)
            except asyncio.CancelledError:
                by = op.preempted_by
                if by is None:  # daemon shutdown: the next boot records it as interrupted
                    raise
                _uncancel()
                outcome = PowerCancelled(
                    operation_id=op_id, action=action, cancelled_by=by, reason="cancelled by a kill"
                )
            except Exception as exc:  # never leave an operation without an outcome
                log.exception("power operation crashed", server=uuid, operation=op_id)
                outcome = PowerFailed(operation_id=op_id, action=action, reason=f"internal error: {exc}")
            await self.journal.record(uuid, outcome, meta=meta)
        except Exception:
            log.exception("could not record a power operation's outcome", server=uuid, operation=op_id)
        finally:
            self._in_flight.end(op)

    async def _perform(self, op: OperationInFlight, wait: int, meta: Metadata) -> Event:
        uuid, op_id, action = op.server, op.id, op.action
        if self._gate is not None:
            await self._gate.restored(uuid)
        if self.installs.bars(uuid, op_id):
            return PowerRejected(operation_id=op_id, action=action, reason=INSTALLING_MESSAGE)
        if action == "kill":
            acquired = op.take_lock_now()
            try:
                await self.journal.record(
                    uuid, PowerStarted(operation_id=op_id, action=action, lock_acquired=acquired), meta=meta
                )
                await self._preempt(op)
                return await self._work(op, meta)
            finally:
                if acquired:
                    op.release_lock()
        if not await op.take_lock(wait):
            return PowerRejected(
                operation_id=op_id,
                action=action,
                reason=f"another power action holds the server's lock; gave up after waiting {wait} s",
            )
        try:
            if op.preempted_by is not None:  # a kill came while this waited: it must not bring the server back
                return PowerCancelled(
                    operation_id=op_id,
                    action=action,
                    cancelled_by=op.preempted_by,
                    reason="cancelled by a kill while waiting for the lock",
                )
            if self.installs.bars(uuid, op_id):  # an install began while this waited
                return PowerRejected(operation_id=op_id, action=action, reason=INSTALLING_MESSAGE)
            op.working = op.preemptible
            try:
                await self.journal.record(uuid, PowerStarted(operation_id=op_id, action=action), meta=meta)
                return await self._work(op, meta)
            finally:
                op.working = False
        finally:
            op.release_lock()

    async def _work(self, op: OperationInFlight, meta: Metadata) -> Event:
        work = {
            "start": self.actions.start,
            "stop": self.actions.stop,
            "restart": self.actions.restart,
            "kill": self.actions.kill,
        }[op.action]
        try:
            detail = await work(op.server, op.id, meta)
        except Rejected as exc:
            return PowerRejected(operation_id=op.id, action=op.action, reason=str(exc))
        except Failed as exc:
            return PowerFailed(operation_id=op.id, action=op.action, reason=str(exc))
        return PowerSucceeded(operation_id=op.id, action=op.action, detail=detail)

    async def _preempt(self, kill: OperationInFlight) -> None:
        """A kill's first step: starts and restarts holding or awaiting the lock must not run on;
        the one at work is cancelled, and its outcome is durable once its task is done."""
        table = self._in_flight.server(kill.server)
        for op in table.contenders():
            op.preempt(kill.id)
        running = table.running
        if running is not None and running.working and running.task is not None and not running.task.done():
            running.task.cancel()
            await asyncio.wait([running.task])

    async def delete_server(self, uuid: str, meta: Metadata) -> None:
        """Delete the server whatever its state, as Wings does (engine.power.deletion)."""
        await self._deletion.delete(uuid, meta)

    def quiet(self, uuid: str, lock_holder: str | None = None) -> bool:
        """Nothing to kill, and no operation of the server in hand (the power lock idle or held by
        `lock_holder`)."""
        return self._nothing_to_kill(uuid, lock_holder) and not any(
            self.in_hand(op.id) for op in self.registry.open_operations(uuid)
        )

    @asynccontextmanager
    async def holding_lock(self, uuid: str, holder: str, wait: float) -> AsyncIterator[bool]:
        """The server's power lock for work that is no power operation (a delete), waited for up to
        `wait` seconds: yields whether it was taken. Dropped afterwards if nothing waits for it."""
        lock = self._in_flight.lock(uuid)
        acquired = await lock.acquire(holder, wait)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release(holder)
            self._in_flight.drop_if_idle(uuid)

    # -- lifecycle -----------------------------------------------------------------------------

    def background(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
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
        await self.actions.liveness.close()  # no probe judges a server while the daemon goes down
        tasks = [*self._tasks, *self._in_flight.tasks()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        meta = Metadata(actor="daemon", channel="internal", cause=Cause.DAEMON_SHUTDOWN)
        stops = [
            self.actions.stop_process(
                uuid, handle, min(self.registry.config(uuid).stop_timeout, stop_limit), Cause.DAEMON_SHUTDOWN, meta
            )
            for uuid, handle in self.processes.running()
            if handle.runtime not in detachable
        ]
        for result in await asyncio.gather(*stops, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("could not stop a server at shutdown", error=str(result))
        await self.processes.close()


def _uncancel() -> None:
    """The kill's cancellation has been turned into an outcome: the task goes on uncancelled (so
    later timeouts in it behave), however many kills asked."""
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()
