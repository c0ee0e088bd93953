"""Boot recovery: make the log true again after the daemon was down.

An operation that has no outcome was interrupted: record that. A server the log says is up is
adopted when its runtime can still reach it (Docker containers), otherwise whatever is left of it
is reaped and its exit recorded with the cause `boot_recovery`.
"""
from __future__ import annotations

import structlog

from engine.environments.base import ExitInfo
from engine.events import Metadata, NewEvent, PowerInterrupted, ProcessExited
from engine.power import PowerService
from engine.registry import ServerRegistry

log = structlog.get_logger("wingman.recovery")
BOOT = Metadata(actor="daemon", channel="boot", cause="boot_recovery")


async def recover(registry: ServerRegistry, power: PowerService) -> dict[str, int]:
    counts = {"interrupted": 0, "adopted": 0, "reaped": 0}
    chart = registry.machine.chart
    for uuid, view in list(registry.views.items()):
        pending = [op for op in view.operations.values() if op.status in ("queued", "running")]
        for op in pending:
            meta = BOOT.model_copy(update={"operation_id": op.id})
            await power.store.append(uuid, [NewEvent.of(PowerInterrupted(operation_id=op.id, action=op.action), meta)])
            counts["interrupted"] += 1
        if view.state == chart.initial or view.config is None:
            continue
        runtime = power.runtimes.get(view.config.runtime)
        handle = None
        if runtime is not None:
            try:
                handle = await runtime.adopt(view.config, power.starter.folder(uuid), power.processes.plain_sink(uuid))
            except Exception as exc:
                log.warning("could not adopt", server=uuid, reason=str(exc))
        if handle is not None:
            power.processes.track(uuid, handle)
            counts["adopted"] += 1
            # A server that was starting is up now; one that was stopping is stopped, as asked.
            if registry.machine.can_fire(uuid, "ready"):
                await power.transition(uuid, "ready", "boot_recovery", BOOT)
            elif not registry.machine.can_fire(uuid, "stop"):
                power.processes.expect_exit(uuid, "boot_recovery")
                await handle.kill()
            continue
        info: ExitInfo | None = None
        if runtime is not None:
            try:
                info = await runtime.reap_orphan(view.config, view.last_process or {})
            except Exception as exc:
                log.warning("could not reap", server=uuid, reason=str(exc))
        exited = ProcessExited(
            exit_code=info.exit_code if info else None, signal=info.signal if info else None,
            oom_killed=info.oom_killed if info else False,
            reason=(info.reason if info else None) or "gone when the daemon restarted",
        )
        await power.transition(uuid, "exited", "boot_recovery", BOOT, before=(exited,))
        counts["reaped"] += 1
    return counts
