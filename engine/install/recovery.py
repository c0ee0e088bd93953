"""At boot, a server the log says is `installing`: the daemon stopped (SIGKILL, a crash, a shutdown)
in the middle of its install, which has no outcome yet. Boot recovery (engine.power.recovery)
hands it here, and the decision is recorded:

- its installer container is still there, running or exited: the install is **adopted**
  (`install.adopted`): its exit is waited for (at once when it had exited), and the install ends
  as any does, from what Docker kept of it (exit code, output): log, removal, the files given to
  the server's user, the outcome, the Panel told, the server started if the create asked;
- nothing is left of it (the container gone, or a `process` server's install, which runs no
  container): it is **interrupted** (`install.interrupted`, a failure), and the Panel is told.

Either way the server ends offline, with exactly one outcome. The power lock is held from the
decision on, before the server counts as restored, so no power action runs meanwhile. A Docker
engine that does not answer defers the decision (boot recovery asks again once it does).
"""

from __future__ import annotations

import asyncio

import structlog

from wingman.engine.environments.base import RuntimeUnavailable
from wingman.engine.events import Metadata, new_id
from wingman.engine.install.script import remove_script_folder
from wingman.engine.install.service import InstallService
from wingman.engine.install.work import InstallWork
from wingman.engine.install_events import InstallAdopted, InstallInterrupted, InstallStarted

log = structlog.get_logger("wingman.install")

ADOPTED, INTERRUPTED, DEFERRED = "adopted", "reaped", "deferred"  # boot recovery's own words for what was done
GONE = "the daemon stopped during the install, and nothing is left of its installer to finish it from"
NO_CONTAINER = "the daemon stopped during the install of a `process` server (no installer runs for one)"


class InstallRecovery:
    def __init__(self, installs: InstallService, boot_meta: Metadata):
        self.installs = installs
        self.meta = boot_meta

    async def recover(self, uuid: str) -> str:
        """Adopt or interrupt the server's install; boot recovery's word for what was done."""
        svc = self.installs
        started = await self._last_start(uuid)
        install_id = started.install_id if started else new_id()
        reinstall = started.reinstall if started else False
        door = svc.power.installs
        door.begin(uuid, install_id)
        await door.lock(uuid, install_id, 0)  # at boot, before the server counts as restored: free
        config = svc.registry.config(uuid)
        runner = svc.runners.get(config.runtime)
        work = InstallWork(uuid, install_id, config, svc.folder(uuid), svc.around, runner, svc.source)
        try:
            running = await runner.find(uuid, work.say_line) if runner is not None else None
        except RuntimeUnavailable as exc:
            door.end(uuid, install_id)
            log.warning(
                "an install left by the daemon cannot be looked at yet; will retry", server=uuid, reason=str(exc)
            )
            return DEFERRED
        except BaseException:
            door.end(uuid, install_id)
            raise
        if running is None:
            try:
                await asyncio.to_thread(remove_script_folder, svc.around.tmp_directory, uuid)
                outcome = InstallInterrupted(install_id=install_id, reason=GONE if runner is not None else NO_CONTAINER)
                await svc.record_outcome(uuid, outcome, self.meta)
            finally:
                door.end(uuid, install_id)
            log.warning("an install left by the daemon is interrupted", server=uuid, install=install_id)
            await svc.tell(uuid, outcome, reinstall, self.meta)
            return INTERRUPTED
        try:
            await svc.journal.record(
                uuid,
                InstallAdopted(install_id=install_id, container_id=running.container_id, running=running.running),
                meta=self.meta,
            )
        except BaseException:
            door.end(uuid, install_id)
            raise
        log.info(
            "an install left by the daemon is adopted",
            server=uuid,
            install=install_id,
            container=running.container_id,
            running=running.running,
        )
        svc.adopted(
            uuid, install_id, work, running, reinstall, bool(started and started.start_on_completion), self.meta
        )
        return ADOPTED

    async def _last_start(self, uuid: str) -> InstallStarted | None:
        """The install the log left open: its last `install.started` (read from the log: a server
        seldom installs, and only one found installing at boot is read)."""
        for ev in reversed(await self.installs.registry.store.read_stream(uuid)):
            if ev.type == InstallStarted.type:
                return InstallStarted.model_validate(ev.data)
        return None
