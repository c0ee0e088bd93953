"""The power operations this daemon has in hand, one record each, and per server its power lock.

An operation is in hand from before its `power.requested` is written until its outcome is
durable: verification tells it from one that was dropped, a delete waits for it. Its record
holds all the engine knows of it besides the log: its lock hold, its task, the kill that
cancelled it, and the future that resolves once its outcome is durable. Which operation a server
runs is asked of its table (`ServerPower.running`): the one holding its lock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from wingman.engine.events import PowerAction
from wingman.engine.power.locks import PowerLock

PREEMPTIBLE: tuple[PowerAction, ...] = ("start", "restart")  # what a kill cancels


@dataclass(eq=False)
class OperationInFlight:
    id: str
    server: str
    action: PowerAction
    lock: PowerLock  # its server's: the table keeps it while any operation of the server is in hand
    settlement: asyncio.Future[None]  # resolved once its outcome is durable
    task: asyncio.Task[None] | None = None  # its run (none for a kill settled in its request's commit)
    working: bool = False  # a start or restart at its work under the lock: a kill cancels its task
    work_done: bool = False  # a commit ended its work: only its outcome is left to record
    preempted_by: str | None = None  # the kill that cancelled it

    @property
    def preemptible(self) -> bool:
        return self.action in PREEMPTIBLE

    def take_lock_now(self) -> bool:
        return self.lock.try_acquire(self.id)

    async def take_lock(self, wait: float) -> bool:
        return await self.lock.acquire(self.id, wait)

    def release_lock(self) -> None:
        self.lock.release(self.id)

    def preempt(self, kill_id: str) -> None:
        """A kill came: a start or restart must not run on (the first kill is the one recorded)."""
        if self.preemptible and self.id != kill_id and self.preempted_by is None:
            self.preempted_by = kill_id


@dataclass(eq=False)
class ServerPower:
    """A server's power lock and its operations in hand, by id, in the order they were accepted."""

    lock: PowerLock = field(default_factory=PowerLock)
    operations: dict[str, OperationInFlight] = field(default_factory=dict)

    @property
    def running(self) -> OperationInFlight | None:
        """The operation holding the lock (none when it is idle, or an install or a delete holds it)."""
        holder = self.lock.holder
        return None if holder is None else self.operations.get(holder)

    def contenders(self) -> list[OperationInFlight]:
        """The operations holding or waiting for the lock, in the order they get it."""
        ids = [self.lock.holder, *self.lock.waiting()]
        return [op for op_id in ids if op_id is not None and (op := self.operations.get(op_id)) is not None]


class InFlight:
    def __init__(self) -> None:
        self._servers: dict[str, ServerPower] = {}
        self._by_id: dict[str, OperationInFlight] = {}  # the same records, for a caller that knows only the id

    def server(self, uuid: str) -> ServerPower:
        """The server's table, made when missing."""
        table = self._servers.get(uuid)  # (setdefault would build one on every call to throw away)
        if table is None:
            table = self._servers[uuid] = ServerPower()
        return table

    def find(self, uuid: str) -> ServerPower | None:
        return self._servers.get(uuid)

    def lock(self, uuid: str) -> PowerLock:
        return self.server(uuid).lock

    def get(self, operation_id: str) -> OperationInFlight | None:
        return self._by_id.get(operation_id)

    def begin(self, uuid: str, operation_id: str, action: PowerAction) -> OperationInFlight:
        table = self.server(uuid)
        op = OperationInFlight(operation_id, uuid, action, table.lock, asyncio.get_running_loop().create_future())
        table.operations[operation_id] = op
        self._by_id[operation_id] = op
        return op

    def end(self, op: OperationInFlight) -> None:
        """Its outcome is durable, or its request never was: out of hand, and whoever waits is told."""
        self._by_id.pop(op.id, None)
        table = self._servers.get(op.server)
        if table is not None:
            table.operations.pop(op.id, None)
        if not op.settlement.done():
            op.settlement.set_result(None)

    def drop_if_idle(self, uuid: str) -> None:
        """Forget the server's table once nothing holds or waits for its lock and nothing is in hand."""
        table = self._servers.get(uuid)
        if table is not None and table.lock.idle and not table.operations:
            del self._servers[uuid]

    def tasks(self) -> list[asyncio.Task[None]]:
        return [op.task for op in self._by_id.values() if op.task is not None]
