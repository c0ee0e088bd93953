"""Boot recovery: make the log true again after the daemon was down.

An operation that has no outcome was interrupted: record that. A server the log says is up is
adopted when its runtime can still reach it (Docker containers), otherwise whatever is left of it
is reaped and its exit recorded with the cause `boot_recovery`. When the runtime itself does not
answer (the Docker engine is down), nothing is decided blind: the server is reconciled from the
container's facts once the engine is back.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import structlog

from engine.environments.base import ExitInfo, Runtime, RuntimeUnavailable
from engine.events import Metadata, PowerInterrupted, ProcessExited, ProcessStarted
from engine.power.journal import Journal
from engine.power.processes import ProcessTracker
from engine.servers.registry import ServerRegistry, UnknownServer
from engine.statechart import Trigger

log = structlog.get_logger("wingman.recovery")
BOOT = Metadata(actor="daemon", channel="boot", cause="boot_recovery")
RETRY_SECONDS = (1, 2, 5, 10)


class BootRecovery:
    def __init__(self, journal: Journal, registry: ServerRegistry, processes: ProcessTracker,
                 runtimes: dict[str, Runtime], folder: Callable[[str], Path]):
        self.journal = journal
        self.registry = registry
        self.processes = processes
        self.runtimes = runtimes
        self.folder = folder  # the server's folder, by uuid

    async def recover(self, background: Callable) -> dict[str, int]:
        """Recover every server; servers whose runtime does not answer yet are retried by a task
        started with `background(coro, name=...)`."""
        counts = {"interrupted": 0, "adopted": 0, "reaped": 0, "deferred": 0}
        deferred: list[str] = []
        for uuid in list(self.registry.views):
            for op in self.registry.open_operations(uuid):
                meta = BOOT.model_copy(update={"operation_id": op.id})
                await self.journal.record(uuid, PowerInterrupted(operation_id=op.id, action=op.action), meta=meta)
                counts["interrupted"] += 1
            outcome = await self.recover_server(uuid)
            if outcome == "deferred":
                deferred.append(uuid)
            if outcome in counts:
                counts[outcome] += 1
        if deferred:
            background(self.reconcile_when_back(deferred), name="reconcile-deferred")
        return counts

    async def recover_server(self, uuid: str) -> str:
        """Adopt, reap, or defer one server the log says is up. Returns what was done."""
        view = self.registry.get(uuid)
        if view.state == self.registry.chart.initial or view.config is None or self.processes.handle(uuid):
            return "nothing"
        runtime = self.runtimes.get(view.config.runtime)
        if runtime is None:
            return await self._record_gone(uuid, None, f"runtime {view.config.runtime!r} is not available")
        try:
            handle = await runtime.adopt(view.config, self.folder(uuid), self.processes.plain_sink(uuid))
        except RuntimeUnavailable as exc:
            log.warning("cannot reconcile yet; will retry when the runtime answers", server=uuid, reason=str(exc))
            return "deferred"
        if handle is not None:
            self.processes.track(uuid, handle)
            await self.journal.record(uuid, ProcessStarted(
                runtime=handle.runtime, pid=handle.pid, container_id=handle.container_id, adopted=True), meta=BOOT)
            # A server that was starting is up now; one that was stopping is stopped, as asked.
            if self.registry.may_fire(uuid, Trigger.READY):
                await self.journal.transition(uuid, Trigger.READY, "boot_recovery", BOOT)
            elif not self.registry.may_fire(uuid, Trigger.STOP):
                self.processes.expect_exit(uuid, "boot_recovery")
                await handle.kill()
            return "adopted"
        try:
            info = await runtime.reap_orphan(view.config, view.last_process or {})
        except RuntimeUnavailable as exc:
            log.warning("cannot reap yet; will retry when the runtime answers", server=uuid, reason=str(exc))
            return "deferred"
        return await self._record_gone(uuid, info, None)

    async def _record_gone(self, uuid: str, info: ExitInfo | None, why: str | None) -> str:
        exited = ProcessExited(
            exit_code=info.exit_code if info else None, signal=info.signal if info else None,
            oom_killed=info.oom_killed if info else False,
            reason=(info.reason if info else None) or why or "gone when the daemon restarted",
        )
        await self.journal.transition(uuid, Trigger.EXITED, "boot_recovery", BOOT, before=(exited,))
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
                except UnknownServer:
                    continue  # deleted meanwhile
                except Exception:
                    log.exception("reconciliation failed; will retry", server=uuid)
                    still.append(uuid)
            uuids = still
