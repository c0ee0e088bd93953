"""Boot recovery: make the log true again after the daemon was down, server by server, while the
API already answers.

For each server: an operation that has no outcome was interrupted, and says so. A server the log
says is installing has its install adopted or interrupted (engine.install.recovery). A server the log
says is up is adopted when its process or container still runs (local processes and Docker
containers both outlive the daemon); otherwise its end is recorded (cause `boot_recovery`) and
the crash handler decides what its restart policy wants. An offline server may be brought back
by its policy, and a restart that was pending when the daemon stopped is resumed. When a
runtime does not answer (the Docker engine is down), nothing is decided blind: the server is
reconciled from the container's facts once the engine is back.

Servers are restored `concurrency` at a time, in the background. Until a server is restored,
its power operations wait (`restored`), and the API says it is not restored yet (`status`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, cast

import structlog

from wingman.engine.console.readiness import DoneMatcher
from wingman.engine.environments.base import ExitInfo, Runtime, RuntimeUnavailable
from wingman.engine.event_types import Cause
from wingman.engine.events import Metadata, PowerAction, PowerInterrupted, ProcessExited, ProcessStarted
from wingman.engine.power.crashes import CrashHandler
from wingman.engine.power.journal import Journal
from wingman.engine.power.probing import LivenessWatches
from wingman.engine.power.processes import ProcessTracker
from wingman.engine.servers.registry import ServerRegistry, UnknownServer
from wingman.engine.statechart import Trigger


class Background(Protocol):
    """Runs a coroutine in a task the daemon owns (PowerService.background)."""

    def __call__(self, coro: Coroutine[Any, Any, Any], name: str) -> object: ...


class InstallRecoverer(Protocol):
    """Installs left without an outcome (engine.install.recovery): adopted or interrupted."""

    async def recover(self, uuid: str) -> str: ...


log = structlog.get_logger("wingman.recovery")
BOOT = Metadata(actor="daemon", channel="boot", cause=Cause.BOOT_RECOVERY)
RETRY_SECONDS = (1, 2, 5, 10)
PENDING, RESTORED, DEFERRED = "pending", "restored", "deferred"  # a server's recovery status


class BootRecovery:
    def __init__(
        self,
        journal: Journal,
        registry: ServerRegistry,
        processes: ProcessTracker,
        runtimes: dict[str, Runtime],
        folder: Callable[[str], Path],
        crashes: CrashHandler,
        concurrency: int = 16,
    ):
        self.journal = journal
        self.registry = registry
        self.processes = processes
        self.runtimes = runtimes
        self.folder = folder  # the server's folder, by uuid
        self.crashes = crashes
        self.concurrency = concurrency
        self.counts = {"interrupted": 0, "adopted": 0, "reaped": 0, "deferred": 0, "restarted": 0}
        self.done = asyncio.Event()
        self._status: dict[str, str] = {}
        self._restored: dict[str, asyncio.Event] = {}
        self.installs: InstallRecoverer | None = None  # set by the daemon
        self.liveness: LivenessWatches | None = None  # set by the daemon: an adopted running server is probed again

    # -- what others ask -------------------------------------------------------------------------

    def status(self, uuid: str) -> str:
        """`pending` until the server is restored, `deferred` while its runtime does not answer."""
        return self._status.get(uuid, RESTORED)

    @property
    def pending(self) -> int:
        return sum(1 for s in self._status.values() if s == PENDING)

    async def restored(self, uuid: str) -> None:
        """Return once the server is restored (at once for a server registered after boot)."""
        event = self._restored.get(uuid)
        if event is not None:
            await event.wait()

    def is_restored(self, uuid: str) -> bool:
        """Whether `restored` would return at once."""
        event = self._restored.get(uuid)
        return event is None or event.is_set()

    # -- the work ------------------------------------------------------------------------------

    def start(self, background: Background) -> None:
        """Mark every server pending and restore them in a task started by `background`."""
        self._background = background
        uuids = list(self.registry.views)
        for uuid in uuids:
            self._status[uuid] = PENDING
            self._restored[uuid] = asyncio.Event()
        background(self._run(uuids, background), name="boot-recovery")

    async def _run(self, uuids: list[str], background: Background) -> None:
        deferred: list[str] = []
        # `concurrency` workers take the servers in turn from one iterator: a task per server
        # waiting on a semaphore would be 10,000 tasks on a large node, memory the allocator
        # keeps after boot.
        queue = iter(uuids)

        async def worker() -> None:
            for uuid in queue:
                try:
                    outcome = await self._restore(uuid)
                except UnknownServer:
                    outcome = "nothing"
                except Exception:
                    log.exception("could not restore a server at boot", server=uuid)
                    outcome = "nothing"
                if outcome == "deferred":
                    deferred.append(uuid)
                self._status[uuid] = DEFERRED if outcome == "deferred" else RESTORED
                self._restored.pop(uuid).set()

        await asyncio.gather(*(worker() for _ in range(max(1, min(self.concurrency, len(uuids))))))
        if deferred:
            background(self.reconcile_when_back(deferred), name="reconcile-deferred")
        self.done.set()
        log.info("boot recovery done", servers=len(uuids), **self.counts)

    async def _restore(self, uuid: str) -> str:
        for op in self.registry.open_operations(uuid):
            meta = BOOT.model_copy(update={"operation_id": op.id})
            await self.journal.record(
                uuid, PowerInterrupted(operation_id=op.id, action=cast(PowerAction, op.action)), meta=meta
            )
            self.counts["interrupted"] += 1
        outcome = await self.recover_server(uuid)
        if outcome in self.counts:
            self.counts[outcome] += 1
        if outcome == "reaped" and self.crashes.pending(uuid):
            self.counts["restarted"] += 1  # found gone: its policy restarts it (crashes.found_gone)
        elif outcome == "nothing":  # offline already: a pending restart resumes, or its policy brings it back
            await self.crashes.at_boot(uuid, BOOT)
            if self.crashes.pending(uuid):
                self.counts["restarted"] += 1
        return outcome

    async def recover_server(self, uuid: str) -> str:
        """Adopt, reap, or defer one server the log says is up. Returns what was done."""
        view = self.registry.get(uuid)
        if self.installs is not None and self.registry.chart.allows(Trigger.INSTALLED, view.state):
            return await self.installs.recover(uuid)  # it was installing: no game process to adopt
        if view.state == self.registry.chart.initial or view.config is None or self.processes.handle(uuid):
            return "nothing"
        runtime = self.runtimes.get(view.config.runtime)
        if runtime is None:
            return await self._record_gone(uuid, None, f"runtime {view.config.runtime!r} is not available")
        booting = self.registry.may_fire(uuid, Trigger.READY)  # it was starting when the daemon went
        matcher = DoneMatcher(view.config.done, view.config.strip_ansi)
        ready: asyncio.Event | None = None  # set when it was booting
        if booting:
            ready, sink = self.processes.readiness(uuid, matcher)
        else:
            sink = self.processes.plain_sink(uuid)
        try:
            handle = await runtime.adopt(view.config, self.folder(uuid), sink, view.last_process or {})
        except RuntimeUnavailable as exc:
            log.warning("cannot reconcile yet; will retry when the runtime answers", server=uuid, reason=str(exc))
            return "deferred"
        if handle is not None:
            self.processes.track(uuid, handle)
            await self.journal.record(uuid, ProcessStarted.of(handle, adopted=True), meta=BOOT)
            if ready is not None:
                # Still booting, or done while we were away (its recent output was read back on
                # adoption): it is running once its done-line is seen, as after a start.
                if matcher.empty or ready.is_set() or handle.runtime == "docker":
                    await self.journal.transition(uuid, Trigger.READY, Cause.BOOT_RECOVERY, BOOT)
                else:
                    self._background(self._ready_when_done(uuid, ready), name=f"adopted-boot-{uuid}")
            elif not self.registry.may_fire(uuid, Trigger.STOP):  # it was stopping: stopped, as asked
                self.processes.expect_exit(uuid, Cause.BOOT_RECOVERY)
                await handle.kill()
            elif self.liveness is not None:
                self.liveness.start(uuid, view.config, handle)
            return "adopted"
        try:
            info = await runtime.reap_orphan(view.config, view.last_process or {})
        except RuntimeUnavailable as exc:
            log.warning("cannot reap yet; will retry when the runtime answers", server=uuid, reason=str(exc))
            return "deferred"
        return await self._record_gone(uuid, info, None)

    async def _ready_when_done(self, uuid: str, ready: asyncio.Event) -> None:
        if await self.processes.ready_or_exited(uuid, ready):
            await self.journal.transition_if_allowed(uuid, Trigger.READY, Cause.BOOT_RECOVERY, BOOT)

    async def _record_gone(self, uuid: str, info: ExitInfo | None, why: str | None) -> str:
        was = self.registry.state(uuid)
        exit_info = ExitInfo(
            exit_code=info.exit_code if info else None,
            signal=info.signal if info else None,
            oom_killed=info.oom_killed if info else False,
            reason=(info.reason if info else None) or why or "gone when the daemon restarted",
        )
        exited = ProcessExited(
            exit_code=exit_info.exit_code,
            signal=exit_info.signal,
            oom_killed=exit_info.oom_killed,
            reason=exit_info.reason,
        )
        await self.journal.transition(uuid, Trigger.EXITED, Cause.BOOT_RECOVERY, BOOT, before=(exited,))
        # It was up and nobody stopped it: to its restart policy, that is a crash. One that was
        # being stopped when the daemon went down is simply stopped.
        if self.registry.chart.allows(Trigger.STOP, was):
            await self.crashes.found_gone(uuid, exit_info, BOOT)
        return "reaped"

    async def reconcile_when_back(self, uuids: list[str]) -> None:
        """Retry deferred servers with backoff until their runtime answers."""
        attempt = 0
        while uuids:
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
            attempt += 1
            still = []
            for uuid in uuids:
                try:
                    if await self.recover_server(uuid) == "deferred":
                        still.append(uuid)
                    else:
                        self._status[uuid] = RESTORED
                except UnknownServer:
                    self._status.pop(uuid, None)
                    continue  # deleted meanwhile
                except Exception:
                    log.exception("reconciliation failed; will retry", server=uuid)
                    still.append(uuid)
            uuids = still
