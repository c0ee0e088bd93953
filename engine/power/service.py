"""Power operations: start, stop, restart and kill under a per-server lock, with recorded outcomes.

Every accepted request is an *operation*: `power.requested` is durable before the caller is
answered, then a background task takes the lock (waiting up to `wait_seconds`), records
`power.started`, does the work (engine.power.actions) and records exactly one outcome, whatever
happens in between. `kill` does not wait for the lock: it cancels a start or restart that holds
it, and marks every start or restart waiting for it, each recorded as cancelled by the kill, then
SIGKILLs now: the server does not come back up behind the operator's back.

How "exactly one outcome" holds:
- the outcome is decided in one place (`_run`) from how the work ended, including a kill's
  cancellation wherever it lands (while `power.started` is being written, too);
- a kill cancels an operation only while it does its work, never while it records its outcome;
- an operation the lock was handed to just before a kill came is marked, and ends cancelled as
  soon as it runs;
- from before its request is written until its outcome is durable, an operation is in
  `in_hand`, so verification can tell an operation in flight from one that was dropped.

A kill that finds nothing to do (the server restored, its lock idle, no process, nothing the
chart could abort) is settled in its request's own commit: `power.requested`, `power.started`
and `power.succeeded` go in one append, under the lock, with no background task. Those are the
events the long way writes, in the same order; a Panel that kills a server in a state it does not
know, and a script that kills a fleet, pay one commit per kill instead of three.

An operation holds its lock until its outcome is durable, so in the log no `power.started` comes
between another operation's `power.started` and its outcome. Its work ends earlier, though, at
the commit of a start's or restart's `ready` or of a stop's or kill's process exit (`on_commit`:
the writer's own turn, before any reader of the log hears `running` or `offline`); from then on
only its outcome is left to record, and `lock_busy` says no. A Panel that sends the next action
over the socket the moment it shows the state is then not refused (the socket refuses while the
lock is busy, as Wings does): its operation waits the moment it takes for that outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import structlog

from wingman.engine.environments.base import Runtime
from wingman.engine.event_types import Cause, EventType
from wingman.engine.events import (
    ACTIONS,
    Event,
    Metadata,
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
from wingman.engine.power.install_door import InstallDoor
from wingman.engine.power.journal import Journal
from wingman.engine.power.locks import PowerLock
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
PREEMPTIBLE = ("start", "restart")  # what a kill cancels
# The committed event that ends each action's work (see the module doc): a process exit, or a
# state change by this trigger.
_WORK_ENDS_WITH = {
    "stop": EventType.PROCESS_EXITED,
    "kill": EventType.PROCESS_EXITED,
    "start": Trigger.READY,
    "restart": Trigger.READY,
}


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
        self._locks: dict[str, PowerLock] = {}
        self._actions: dict[str, str] = {}  # operation -> action, for operations holding or awaiting a lock
        self._working: dict[str, tuple[str, asyncio.Task]] = {}  # server -> the preemptible operation at work
        self._preempted: dict[str, str] = {}  # operation -> the kill that cancelled it
        self._in_hand: set[str] = set()
        self._work_done: set[str] = set()  # lock holders with only their outcome left to record
        self._settled: dict[str, asyncio.Future] = {}  # operation -> resolved once its outcome is durable
        self._tasks: set[asyncio.Task] = set()
        self._watchers: list[RequestWatcher] = []
        self._gate: RestoreGate | None = None
        self._deletion = ServerDeletion(self, folder_of=actions.starter.folder)
        # Which servers install, refused power actions meanwhile (engine.power.install_door).
        self.installs = InstallDoor(registry, self._lock, self._locks)
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
        if action not in ACTIONS:
            raise ValueError(f"unknown power action {action!r}")
        view = self.registry.get(uuid)
        if self.installs.installing(uuid) and (for_install is None or self.installs.install_of(uuid) != for_install):
            raise ServerInstalling()
        op_id = new_id()
        if for_install is not None:
            self.installs.begin(uuid, for_install, stop_id=op_id)
        wait = normalize_wait(wait_seconds)
        meta = meta.model_copy(update={"operation_id": op_id})
        records: list[Event] = [PowerRequested(operation_id=op_id, action=action, wait_seconds=wait)]
        for watcher in self._watchers:
            records.extend(watcher.before(uuid, action, meta))
        suspended = action in PREEMPTIBLE and view.suspended
        if suspended:
            records.append(PowerRejected(operation_id=op_id, action=action, reason=SUSPENDED_MESSAGE))
        settled_now = action == "kill" and self._nothing_to_kill(uuid)
        if settled_now:
            lock = self._lock(uuid)
            lock.try_acquire(op_id)  # idle, just checked: held until the commit, so no start slips in
            records.append(PowerStarted(operation_id=op_id, action=action, lock_acquired=True))
            records.append(PowerSucceeded(operation_id=op_id, action=action, detail=NOTHING_TO_KILL))
        self._in_hand.add(op_id)
        try:
            await self.journal.append_now(uuid, records, meta)
        except BaseException:
            self._in_hand.discard(op_id)
            raise
        finally:
            if settled_now:
                lock.release(op_id)
        for watcher in self._watchers:
            watcher.accepted(uuid, action, meta)
        op = self.registry.operation_in_memory(op_id)
        if suspended or settled_now:
            self._in_hand.discard(op_id)
        if suspended:
            raise SuspendedServer(op)
        if not settled_now:
            self.background(self._run(uuid, op_id, action, wait, meta), name=f"power-{action}-{op_id}")
        return op

    def on_commit(self, events: list[RecordedEvent]) -> None:
        """Subscribed to the store: note the lock holders whose work the commit ended (see the
        module doc)."""
        for ev in events:
            if ev.type == EventType.PROCESS_EXITED:
                ending = ev.type
            elif ev.type == EventType.STATE_CHANGED and ev.data.get("trigger") == Trigger.READY:
                ending = Trigger.READY
            else:
                continue
            op_id = ev.metadata.get("operation_id")
            lock = self._locks.get(ev.stream_id)
            if (
                lock is not None
                and op_id is not None
                and lock.holder == op_id
                and _WORK_ENDS_WITH.get(self._actions.get(op_id)) == ending
            ):
                self._work_done.add(op_id)

    def _nothing_to_kill(self, uuid: str, lock_holder: str | None = None) -> bool:
        """Whether a kill of the server now would find nothing to do (see the module doc), the
        power lock idle or held by `lock_holder`."""
        if self._gate is not None and not self._gate.is_restored(uuid):
            return False
        lock = self._locks.get(uuid)
        if lock is not None and not lock.idle and (lock_holder is None or lock.holder != lock_holder or lock.waiting()):
            return False
        # Asked of the chart, not of the server's machine: nothing fires here, and a server only
        # ever killed needs no machine model.
        return self.processes.handle(uuid) is None and not self.registry.chart.allows(
            Trigger.ABORT, self.registry.state(uuid)
        )

    def _lock(self, uuid: str) -> PowerLock:
        lock = self._locks.get(uuid)  # (setdefault would build a lock on every call to throw away)
        if lock is None:
            lock = self._locks[uuid] = PowerLock()
        return lock

    def lock_busy(self, uuid: str) -> bool:
        """Whether an operation holds or waits for the server's power lock with work still to do
        (Wings' websocket refuses a power action at once in that case, rather than queueing it).
        A holder whose work has ended and that only records its outcome does not count: the lock
        is free within moments (see the module doc)."""
        lock = self._locks.get(uuid)
        if lock is None or lock.idle:
            return False
        return lock.holder not in self._work_done or bool(lock.waiting())

    def in_hand(self, operation_id: str) -> bool:
        """Whether this daemon is running the operation (accepted, and its outcome not yet durable)."""
        return operation_id in self._in_hand

    async def settled(self, operation_id: str) -> None:
        """Return once the operation's outcome is durable (at once if it is not in hand)."""
        if operation_id in self._in_hand:
            waiter = self._settled.setdefault(operation_id, asyncio.get_running_loop().create_future())
            await asyncio.shield(waiter)

    async def _run(self, uuid: str, op_id: str, action: str, wait: int, meta: Metadata) -> None:
        try:
            try:
                outcome = await self._perform(uuid, op_id, action, wait, meta)
            except asyncio.CancelledError:
                by = self._preempted.get(op_id)
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
            self._in_hand.discard(op_id)
            self._preempted.pop(op_id, None)
            waiter = self._settled.pop(op_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def _perform(self, uuid: str, op_id: str, action: str, wait: int, meta: Metadata) -> Event:
        if self._gate is not None:
            await self._gate.restored(uuid)
        if self.installs.bars(uuid, op_id):
            return PowerRejected(operation_id=op_id, action=action, reason=INSTALLING_MESSAGE)
        lock = self._lock(uuid)
        self._actions[op_id] = action
        try:
            if action == "kill":
                acquired = lock.try_acquire(op_id)
                try:
                    await self.journal.record(
                        uuid, PowerStarted(operation_id=op_id, action=action, lock_acquired=acquired), meta=meta
                    )
                    await self._preempt(uuid, op_id, lock)
                    return await self._work(uuid, op_id, action, meta)
                finally:
                    if acquired:
                        lock.release(op_id)
            acquired = await lock.acquire(op_id, wait)
            if not acquired:
                return PowerRejected(
                    operation_id=op_id,
                    action=action,
                    reason=(f"another power action holds the server's lock; gave up after waiting {wait} s"),
                )
            try:
                by = self._preempted.get(op_id)
                if by is not None:  # a kill came while this waited: it must not bring the server back
                    return PowerCancelled(
                        operation_id=op_id,
                        action=action,
                        cancelled_by=by,
                        reason="cancelled by a kill while waiting for the lock",
                    )
                if self.installs.bars(uuid, op_id):  # an install began while this waited
                    return PowerRejected(operation_id=op_id, action=action, reason=INSTALLING_MESSAGE)
                if action in PREEMPTIBLE:
                    self._working[uuid] = (op_id, asyncio.current_task())
                try:
                    await self.journal.record(uuid, PowerStarted(operation_id=op_id, action=action), meta=meta)
                    return await self._work(uuid, op_id, action, meta)
                finally:
                    if self._working.get(uuid, (None,))[0] == op_id:
                        del self._working[uuid]
            finally:
                lock.release(op_id)
        finally:
            self._actions.pop(op_id, None)
            self._work_done.discard(op_id)

    async def _work(self, uuid: str, op_id: str, action: str, meta: Metadata) -> Event:
        work = {
            "start": self.actions.start,
            "stop": self.actions.stop,
            "restart": self.actions.restart,
            "kill": self.actions.kill,
        }[action]
        try:
            detail = await work(uuid, op_id, meta)
        except Rejected as exc:
            return PowerRejected(operation_id=op_id, action=action, reason=str(exc))
        except Failed as exc:
            return PowerFailed(operation_id=op_id, action=action, reason=str(exc))
        return PowerSucceeded(operation_id=op_id, action=action, detail=detail)

    async def _preempt(self, uuid: str, kill_id: str, lock: PowerLock) -> None:
        """A kill's first step: starts and restarts holding or awaiting the lock must not run on."""
        for op_id in [lock.holder, *lock.waiting()]:
            if op_id is not None and op_id != kill_id and self._actions.get(op_id) in PREEMPTIBLE:
                self._preempted.setdefault(op_id, kill_id)
        working = self._working.get(uuid)
        if working is not None and not working[1].done():
            working[1].cancel()
            await asyncio.wait([working[1]])  # its outcome is durable once the task is done

    async def delete_server(self, uuid: str, meta: Metadata) -> None:
        """Delete the server whatever its state, as Wings does (engine.power.deletion)."""
        await self._deletion.delete(uuid, meta)

    def quiet(self, uuid: str, lock_holder: str | None = None) -> bool:
        """Nothing to kill, and no operation of the server in hand (the power lock idle or held by
        `lock_holder`)."""
        return self._nothing_to_kill(uuid, lock_holder) and not any(
            op.id in self._in_hand for op in self.registry.open_operations(uuid)
        )

    @asynccontextmanager
    async def holding_lock(self, uuid: str, holder: str, wait: float) -> AsyncIterator[bool]:
        """The server's power lock for work that is no power operation (a delete), waited for up to
        `wait` seconds: yields whether it was taken. Dropped afterwards if nothing waits for it."""
        lock = self._lock(uuid)
        acquired = await lock.acquire(holder, wait)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release(holder)
            if lock.idle:
                self._locks.pop(uuid, None)

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
