"""Boot recovery: make the log true again after the daemon was down.

An operation that has no outcome was interrupted: record that. A server the log says is up is
adopted when its runtime can still reach it (Docker containers), otherwise whatever is left of it
is reaped and its exit recorded with the cause `boot_recovery`. When the runtime itself does not
answer (the Docker engine is down), nothing is decided blind: the server is reconciled from the
container's facts once the engine is back.
"""
from __future__ import annotations

import asyncio

import structlog

from engine.environments.base import ExitInfo, RuntimeUnavailable
from engine.events import Metadata, NewEvent, PowerInterrupted, ProcessExited, ProcessStarted
from engine.power.service import PowerService
from engine.servers.registry import ServerRegistry, UnknownServer

log = structlog.get_logger("wingman.recovery")
BOOT = Metadata(actor="daemon", channel="boot", cause="boot_recovery")
RETRY_SECONDS = (1, 2, 5, 10)


async def recover(registry: ServerRegistry, power: PowerService) -> dict[str, int]:
    counts = {"interrupted": 0, "adopted": 0, "reaped": 0, "deferred": 0}
    deferred: list[str] = []
    for uuid, view in list(registry.views.items()):
        pending = [op for op in view.operations.values() if op.status in ("queued", "running")]
        for op in pending:
            meta = BOOT.model_copy(update={"operation_id": op.id})
            await power.store.append(uuid, [NewEvent.of(PowerInterrupted(operation_id=op.id, action=op.action), meta)])
            counts["interrupted"] += 1
        outcome = await recover_server(registry, power, uuid)
        if outcome == "deferred":
            deferred.append(uuid)
        if outcome in counts:
            counts[outcome] += 1
    if deferred:
        power.background(reconcile_when_back(registry, power, deferred), name="reconcile-deferred")
    return counts


async def recover_server(registry: ServerRegistry, power: PowerService, uuid: str) -> str:
    """Adopt, reap, or defer one server the log says is up. Returns what was done."""
    view = registry.get(uuid)
    if view.state == registry.machine.chart.initial or view.config is None or power.processes.handle(uuid):
        return "nothing"
    runtime = power.runtimes.get(view.config.runtime)
    if runtime is None:
        return await _record_gone(power, uuid, None, f"runtime {view.config.runtime!r} is not available")
    try:
        handle = await runtime.adopt(view.config, power.starter.folder(uuid), power.processes.plain_sink(uuid))
    except RuntimeUnavailable as exc:
        log.warning("cannot reconcile yet; will retry when the runtime answers", server=uuid, reason=str(exc))
        return "deferred"
    if handle is not None:
        power.processes.track(uuid, handle)
        await power.store.append(uuid, [NewEvent.of(ProcessStarted(
            runtime=handle.runtime, pid=handle.pid, container_id=handle.container_id, adopted=True), BOOT)])
        # A server that was starting is up now; one that was stopping is stopped, as asked.
        if registry.machine.can_fire(uuid, "ready"):
            await power.transition(uuid, "ready", "boot_recovery", BOOT)
        elif not registry.machine.can_fire(uuid, "stop"):
            power.processes.expect_exit(uuid, "boot_recovery")
            await handle.kill()
        return "adopted"
    try:
        info = await runtime.reap_orphan(view.config, view.last_process or {})
    except RuntimeUnavailable as exc:
        log.warning("cannot reap yet; will retry when the runtime answers", server=uuid, reason=str(exc))
        return "deferred"
    return await _record_gone(power, uuid, info, None)


async def _record_gone(power: PowerService, uuid: str, info: ExitInfo | None, why: str | None) -> str:
    exited = ProcessExited(
        exit_code=info.exit_code if info else None, signal=info.signal if info else None,
        oom_killed=info.oom_killed if info else False,
        reason=(info.reason if info else None) or why or "gone when the daemon restarted",
    )
    await power.transition(uuid, "exited", "boot_recovery", BOOT, before=(exited,))
    return "reaped"


async def reconcile_when_back(registry: ServerRegistry, power: PowerService, uuids: list[str]) -> None:
    """Retry deferred servers with backoff until their runtime answers."""
    attempt = 0
    while uuids:
        await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
        attempt += 1
        still = []
        for uuid in uuids:
            try:
                if await recover_server(registry, power, uuid) == "deferred":
                    still.append(uuid)
            except UnknownServer:
                continue  # deleted meanwhile
            except Exception:
                log.exception("reconciliation failed; will retry", server=uuid)
                still.append(uuid)
        uuids = still
