"""Installs as operations: each holds its server's power lock, is recorded from its start
(`install.started`, with the `install` state change to `installing`) to exactly one outcome (with
the `installed` change back to offline), and is reported to the Panel (`panel.install_reported`);
then `install completed` goes to the server's websockets, and the server is started when the
Panel asked for it (a create's `start_on_completion`) and the install succeeded.

How an install begins:
- a Panel's create (`install`): the server was just registered, offline, its lock free. The door
  (engine.power.install_door) closes before the create is answered, so a power action sent on
  the heels of the answer is refused rather than raced.
- a reinstall (`reinstall`): refused (InstallRefused, Wings' words) while the power lock is busy.
  A server that is not offline is stopped first by a power operation of its own (cause
  `reinstall`), the only one the door lets through; the install follows once it has its outcome.
  The answer waits for the first durable step (the stop's request, or the install's start).

How "exactly one outcome" holds: the outcome is decided in one place (`_install`), from how the
work ended (engine.install.work), including a cancellation by a delete (`cancel`: the installer is
killed and removed, and the install failed). A daemon that stops mid-install records nothing and
leaves the installer running: the next boot adopts it or records the install interrupted
(engine.install.recovery).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog

from wingman.engine.environments.install_runner import InstallRunner, RunningInstall
from wingman.engine.event_types import Cause
from wingman.engine.events import Metadata, new_id
from wingman.engine.install import feed as said
from wingman.engine.install.work import Ended, InstallOutcome, InstallSource, InstallWork, Surroundings
from wingman.engine.install_events import (
    InstallFailed,
    InstallInterrupted,
    InstallStarted,
    InstallSucceeded,
)
from wingman.engine.panel_events import InstallReported
from wingman.engine.power.journal import Journal
from wingman.engine.power.outcomes import SuspendedServer
from wingman.engine.power.service import PowerService
from wingman.engine.servers.registry import ServerRegistry, UnknownServer
from wingman.engine.statechart import IllegalTransition, Trigger

log = structlog.get_logger("wingman.install")

REINSTALL_BUSY = "Cannot execute server reinstall event while another power action is running."  # Wings' words
LOCK_WAIT = 30.0  # seconds an install waits for the power lock (its holder is recording an outcome, or a stop)
CAUSES = {
    InstallSucceeded: Cause.INSTALL_SUCCEEDED,
    InstallFailed: Cause.INSTALL_FAILED,
    InstallInterrupted: Cause.INSTALL_INTERRUPTED,
}


class InstallRefused(Exception):
    """A reinstall that cannot begin now; the message is Wings' (a 409)."""


class InstallService:
    def __init__(
        self,
        journal: Journal,
        registry: ServerRegistry,
        power: PowerService,
        folder: Callable[[str], Path],
        around: Surroundings,
        runners: dict[str, InstallRunner],
        source: InstallSource | None = None,
    ):
        self.journal = journal
        self.registry = registry
        self.power = power
        self.folder = folder
        self.around = around
        self.runners = runners  # by runtime kind; a kind without one runs no script (`process`)
        self.source = source  # the Panel; None on a standalone node
        self._tasks: dict[str, asyncio.Task[None]] = {}  # server -> its install in progress
        self._works: dict[str, InstallWork] = {}
        self._cancelled: dict[str, str] = {}  # server -> why its install was cancelled
        self._finishing: set[str] = set()  # servers whose install records its outcome: not cancelled any more

    @property
    def feed(self) -> said.InstallFeed:
        return self.around.feed

    # -- beginning ---------------------------------------------------------------------------------

    def install(self, uuid: str, start_on_completion: bool, meta: Metadata) -> str:
        """A Panel's create: install the server just registered, in the background; its id."""
        install_id = new_id()
        self.power.installs.begin(uuid, install_id)
        self._spawn(uuid, self._install(uuid, install_id, False, start_on_completion, meta))
        return install_id

    async def reinstall(self, uuid: str, meta: Metadata) -> str:
        """Reinstall the server (UnknownServer, InstallRefused, StoreUnavailable); returns once its
        first step is durable, the rest in the background; its id."""
        self.registry.get(uuid)
        power = self.power
        if power.lock_busy(uuid) or power.installs.installing(uuid):
            raise InstallRefused(REINSTALL_BUSY)
        install_id = new_id()
        meta = meta.model_copy(update={"cause": Cause.REINSTALL})
        try:
            if not self.registry.chart.allows(Trigger.INSTALL, self.registry.state(uuid)):
                stop = await power.request(uuid, "stop", None, meta, for_install=install_id)
                self._spawn(uuid, self._install(uuid, install_id, True, False, meta, stop_id=stop.id))
                return install_id
            power.installs.begin(uuid, install_id)
            if not await self._begin(uuid, install_id, True, False, meta, now=True):
                raise InstallRefused(REINSTALL_BUSY)
        except BaseException:
            power.installs.end(uuid, install_id)
            raise
        self._spawn(uuid, self._install(uuid, install_id, True, False, meta, begun=True))
        return install_id

    def _spawn(self, uuid: str, coro: Coroutine[Any, Any, None]) -> None:
        task = self.power.background(coro, name=f"install-{uuid}")
        self._tasks[uuid] = task
        task.add_done_callback(lambda t: self._tasks.pop(uuid, None) if self._tasks.get(uuid) is t else None)

    async def _begin(
        self, uuid: str, install_id: str, reinstall: bool, start_on_completion: bool, meta: Metadata, now: bool = False
    ) -> bool:
        """Take the lock and record the start with the `install` change; False when the lock could
        not be had or the server is not offline (nothing recorded)."""
        if not await self.power.installs.lock(uuid, install_id, LOCK_WAIT):
            return False
        started = InstallStarted(
            install_id=install_id,
            reinstall=reinstall,
            start_on_completion=start_on_completion,
            runtime=self.registry.config(uuid).runtime,
        )
        try:
            await self.journal.transition(
                uuid, Trigger.INSTALL, meta.cause or Cause.INSTALL, meta, before=(started,), now=now
            )
        except IllegalTransition:
            return False
        self.feed.tell(uuid, said.STARTED)
        return True

    # -- the install ----------------------------------------------------------------------------

    def adopted(
        self,
        uuid: str,
        install_id: str,
        work: InstallWork,
        running: RunningInstall,
        reinstall: bool,
        start_on_completion: bool,
        meta: Metadata,
    ) -> None:
        """Boot recovery adopted the server's installer (engine.install.recovery): the install,
        begun and holding the lock, ends in the background from it."""
        self._spawn(
            uuid,
            self._install(uuid, install_id, reinstall, start_on_completion, meta, begun=True, adopted=(work, running)),
        )

    async def _install(
        self,
        uuid: str,
        install_id: str,
        reinstall: bool,
        start_on_completion: bool,
        meta: Metadata,
        stop_id: str | None = None,
        begun: bool = False,
        adopted: tuple[InstallWork, RunningInstall] | None = None,
    ) -> None:
        outcome: InstallOutcome | None = None
        recorded = False
        try:
            try:
                if not begun:
                    why = await self._before(uuid, install_id, reinstall, start_on_completion, meta, stop_id)
                    if why is not None:  # no install began: the Panel is told why, and that is all
                        await self._report(uuid, install_id, False, why, reinstall, meta)
                        return
                outcome = await self._work(uuid, install_id, reinstall, meta, adopted)
            except asyncio.CancelledError:
                reason = self._cancelled.pop(uuid, None)
                if reason is None:  # the daemon stops: the installer runs on, the next boot takes it up
                    raise
                _uncancel()
                if not self._installing(uuid):
                    return
                work = self._works.get(uuid)
                if work is not None:
                    await work.discard()
                outcome = InstallFailed(install_id=install_id, reason=f"cancelled: {reason}")
            self._finishing.add(uuid)  # from here on a delete waits for the end instead of cancelling
            await self.record_outcome(uuid, outcome, meta)
            recorded = True
        except Exception:
            log.exception("an install could not be recorded to its end", server=uuid, install=install_id)
        finally:
            self._works.pop(uuid, None)
            self._cancelled.pop(uuid, None)
            # The lock and the door open with the outcome's commit, as Wings releases its install
            # lock before it reports: whoever sees the server offline may act on it at once.
            self.power.installs.end(uuid, install_id)
        try:
            if recorded and outcome is not None:  # it is, once recorded
                await self.tell(uuid, outcome, reinstall, meta)
        finally:
            self._finishing.discard(uuid)
        if start_on_completion and isinstance(outcome, InstallSucceeded):
            await self._start(uuid, meta)

    async def _before(
        self,
        uuid: str,
        install_id: str,
        reinstall: bool,
        start_on_completion: bool,
        meta: Metadata,
        stop_id: str | None,
    ) -> str | None:
        """The reinstall's stop, then the start; why the install could not begin, or None."""
        if stop_id is not None:
            await self.power.settled(stop_id)
            op = self.registry.operation_in_memory(stop_id)
            if not self.registry.chart.allows(Trigger.INSTALL, self.registry.state(uuid)):
                ended = f"{op.status}: {op.reason}" if op is not None else "without an outcome"
                return f"the server could not be stopped for its reinstall (its stop ended {ended})"
        if not await self._begin(uuid, install_id, reinstall, start_on_completion, meta):
            return (
                f"the server's power lock could not be had within {LOCK_WAIT:g} s, or it was not offline "
                f"(it is {self.registry.state(uuid)})"
            )
        return None

    async def _work(
        self,
        uuid: str,
        install_id: str,
        reinstall: bool,
        meta: Metadata,
        adopted: tuple[InstallWork, RunningInstall] | None,
    ) -> Ended:
        if adopted is not None:
            work, running = adopted
            step = work.finish(running)
        else:
            config = self.registry.config(uuid)
            work = InstallWork(
                uuid, install_id, config, self.folder(uuid), self.around, self.runners.get(config.runtime), self.source
            )
            step = work.run(reinstall, meta, lambda: self.registry.config(uuid))
        self._works[uuid] = work
        try:
            return await step
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave an install without an outcome
            log.exception("an install failed on an unexpected error", server=uuid, install=install_id)
            await work.discard()
            return InstallFailed(install_id=install_id, reason=f"internal error: {exc}")

    async def record_outcome(self, uuid: str, outcome: InstallOutcome, meta: Metadata) -> None:
        """The outcome, with the `installed` change. A fact whatever the state: it is recorded
        even if the change is not allowed."""
        await self.journal.transition_if_allowed(
            uuid, Trigger.INSTALLED, CAUSES[type(outcome)], meta, before=(outcome,)
        )
        log.info("install ended", server=uuid, outcome=outcome.type, reason=getattr(outcome, "reason", None))

    async def tell(self, uuid: str, outcome: InstallOutcome, reinstall: bool, meta: Metadata) -> None:
        """Once the outcome is recorded: the Panel, then the websockets (`install completed`)."""
        await self._report(
            uuid,
            outcome.install_id,
            isinstance(outcome, InstallSucceeded),
            getattr(outcome, "reason", None),
            reinstall,
            meta,
        )
        self.feed.tell(uuid, said.COMPLETED)

    async def _report(
        self, uuid: str, install_id: str | None, successful: bool, reason: str | None, reinstall: bool, meta: Metadata
    ) -> None:
        if self.source is None:
            return
        error = await self.source.report(uuid, successful, reinstall)
        await self.journal.record(
            uuid,
            InstallReported(
                successful=successful,
                reason=reason,
                reported=error is None,
                report_error=error,
                reinstall=reinstall,
                install_id=install_id,
            ),
            meta=meta,
        )

    async def _start(self, uuid: str, meta: Metadata) -> None:
        try:
            await self.power.request(uuid, "start", None, meta)
        except (UnknownServer, SuspendedServer) as exc:
            log.info("the installed server was not started", server=uuid, reason=str(exc) or "deleted")
        except Exception:
            log.exception("the installed server could not be started", server=uuid)

    def _installing(self, uuid: str) -> bool:
        view = self.registry.views.get(uuid)
        return view is not None and self.registry.chart.allows(Trigger.INSTALLED, view.state)

    # -- ending early ----------------------------------------------------------------------------

    async def cancel(self, uuid: str, reason: str) -> None:
        """End the server's install now (a delete): its installer killed and removed, the install
        failed; returns once that is recorded (at once when nothing installs)."""
        task = self._tasks.get(uuid)
        if task is None or task.done():
            return
        if uuid not in self._finishing:
            self._cancelled[uuid] = reason
            task.cancel()
        await asyncio.wait([task])


def _uncancel() -> None:
    """The cancellation has been turned into an outcome: the task goes on uncancelled."""
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()
