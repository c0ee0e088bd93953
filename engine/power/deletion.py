"""Deleting a server whatever its state, as Wings does when the Panel deletes it.

Each step is an event on the server's stream, and the stream stays: after the server is gone its
history still reads back (`/events`, `/state`, diagrams), as the audit promises.

1. `server.suspended`, first and on its own (skipped when it already is): from its commit on, no
   start or restart is accepted (a Panel's start racing the delete, the crash handler's restart).
   If the store cannot take it, the caller hears so and nothing has changed.
2. an install under way is cancelled (its installer killed and removed, its outcome
   `install.failed`), since an install refuses every power action, a kill included (engine.install);
   then a kill, through the power engine, when anything runs or starts or an operation is in hand: an
   operation with its request, outcome and cause, under the statechart's rules, which cancels a
   start or restart in flight as every kill does. The delete goes on once every operation of the
   server has its outcome and the server's power lock is free; it holds the lock from then on.
3. `server.environment_destroyed`: what the runtime keeps for the server is removed (Docker: its
   container; a local process: its console file, FIFO and exit status).
4. `server.deleted`: the server leaves the live set. Its folder was set aside just before (a rename
   within the data folder, engine.servers.folder_removal), so the same uuid registered again
   starts with a folder of its own.
5. from the background, `server.files_removed` or `server.files_removal_failed`: the folder set
   aside is removed without following a symlink. The caller has had its answer by then: a failure
   is recorded (and logged), never raised at it.

A delete that cannot stop the server (its kill failed: the Docker engine is gone) raises Rejected
and leaves it suspended, as Wings leaves it when its Destroy fails; the runtime's own errors
(RuntimeUnavailable, RuntimeFailure) reach the caller the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from wingman.engine.events import (
    EnvironmentDestroyed,
    FilesRemovalFailed,
    FilesRemoved,
    Metadata,
    ServerDeleted,
    ServerSuspended,
    new_id,
)
from wingman.engine.power.outcomes import Rejected
from wingman.engine.servers.folder_removal import remove, set_aside

if TYPE_CHECKING:
    from wingman.engine.power.service import PowerService

log = structlog.get_logger("wingman.delete")

SETTLE_SECONDS = 30.0  # how long a delete waits for the server's operations to end after its kill
ROUNDS = 3  # kills a delete tries before it gives up (a second is only needed when one raced it)


class ServerDeletion:
    def __init__(self, power: PowerService, folder_of: Callable[[str], Path]):
        self._power = power
        self._folder_of = folder_of
        self._under_way: dict[str, asyncio.Task[None]] = {}  # server -> its delete in progress

    async def delete(self, uuid: str, meta: Metadata) -> None:
        """Raises UnknownServer for a server that is not (or no longer) here, Rejected when it
        cannot be stopped; the server is suspended from the first step on. A delete asked for
        while one is under way (a Panel retrying after its timeout) ends as that one does: a
        second would find its lock busy and send a kill of its own."""
        task = self._under_way.get(uuid)
        if task is None:
            task = self._under_way[uuid] = self._power.background(self._delete(uuid, meta), name=f"delete-{uuid}")
            task.add_done_callback(
                lambda t: self._under_way.pop(uuid, None) if self._under_way.get(uuid) is t else None
            )
        await asyncio.shield(task)

    async def _delete(self, uuid: str, meta: Metadata) -> None:
        power = self._power
        if not power.registry.get(uuid).suspended:
            await power.journal.append_now(uuid, [ServerSuspended()], meta)
        if power.install_control is not None:  # an install refuses kills: it is ended (failed) first
            await power.install_control.cancel(uuid, "the server is being deleted")
        deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
        holder = f"delete-{new_id()}"
        last_kill = None
        for _ in range(ROUNDS):
            if not power.quiet(uuid):
                last_kill = await power.request(uuid, "kill", None, meta)
            await self._settle(uuid, deadline)
            async with power.holding_lock(uuid, holder, self._left(deadline)) as held:
                if held and power.quiet(uuid, lock_holder=holder):
                    await self._remove(uuid, meta)
                    return
        why = f"its kill ended {last_kill.status}: {last_kill.reason}" if last_kill else "power actions kept it busy"
        raise Rejected(f"the server could not be stopped for its deletion ({why}); it stays, suspended")

    def _left(self, deadline: float) -> float:
        return max(0.0, deadline - asyncio.get_running_loop().time())

    async def _settle(self, uuid: str, deadline: float) -> None:
        """Wait until every operation of the server in hand has its outcome (the kill's too)."""
        power = self._power
        waits = [power.settled(op.id) for op in power.registry.open_operations(uuid) if power.in_hand(op.id)]
        if not waits:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*waits), self._left(deadline))
        except TimeoutError:
            raise Rejected(
                f"a power action was still in progress after {SETTLE_SECONDS:g} s; the server stays, suspended"
            ) from None

    async def _remove(self, uuid: str, meta: Metadata) -> None:
        """Steps 3 to 5, under the server's power lock, the server down and nothing in hand."""
        power = self._power
        config = power.registry.config(uuid)
        runtime = power.runtimes.get(config.runtime)
        if runtime is not None:
            removed = await runtime.destroy(config)
            await power.journal.record(uuid, EnvironmentDestroyed(runtime=config.runtime, removed=removed), meta=meta)
        folder = self._folder_of(uuid)
        try:
            trash, problem = await asyncio.to_thread(set_aside, folder, new_id()), None
        except OSError as exc:
            trash, problem = None, f"{folder}: could not be set aside for removal: {exc.strerror or exc}"
        await power.journal.record(uuid, ServerDeleted(), meta=meta)
        power.processes.forget_console(uuid)
        power.journal.forget(uuid)
        power.background(self._remove_files(uuid, folder, trash, problem, meta), name=f"delete-files-{uuid}")

    async def _remove_files(
        self, uuid: str, folder: Path, trash: Path | None, problem: str | None, meta: Metadata
    ) -> None:
        try:
            outcome: FilesRemoved | FilesRemovalFailed
            if problem is not None:
                outcome = FilesRemovalFailed(folder=str(folder), left_at=str(folder), problems=[problem])
            elif trash is None:
                outcome = FilesRemoved(folder=str(folder), existed=False)
            else:
                problems = await asyncio.to_thread(remove, trash)
                outcome = (
                    FilesRemovalFailed(folder=str(folder), left_at=str(trash), problems=problems)
                    if problems
                    else FilesRemoved(folder=str(folder))
                )
            if isinstance(outcome, FilesRemovalFailed):
                log.warning(
                    "a deleted server's files could not all be removed",
                    server=uuid,
                    left_at=outcome.left_at,
                    problems=outcome.problems,
                )
            await self._power.journal.record(uuid, outcome, meta=meta)
        except Exception:
            log.exception("a deleted server's files removal could not be recorded", server=uuid)
