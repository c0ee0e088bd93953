"""What each power action does to a server, once its operation may run (engine.power.service
holds the locks, the preemption by kills and the outcomes).

Each action returns a detail for its `power.succeeded`, or raises `Rejected` / `Failed` with the
reason. Every state change goes through the journal, checked against the statechart.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from wingman.engine.console.readiness import DoneMatcher
from wingman.engine.environments.base import ProcessHandle, RuntimeFailure
from wingman.engine.event_types import Cause
from wingman.engine.events import Metadata, PrebootCheckFailed, ProcessStarted, StopTimedOut
from wingman.engine.power.journal import Journal
from wingman.engine.power.outcomes import Failed, Rejected, describe_exit
from wingman.engine.power.probing import LivenessWatches, readiness_gate
from wingman.engine.power.processes import ProcessTracker
from wingman.engine.preboot.checks import PrebootFailure
from wingman.engine.preboot.starter import Starter
from wingman.engine.servers.registry import ServerRegistry
from wingman.engine.statechart import Trigger

log = structlog.get_logger("wingman.power")

NOTHING_TO_KILL = "the server was not running"  # a kill's detail when no process ran and nothing was starting
ABORTED_WHILE_LAUNCHING = "a kill aborted the start while its process was launching; the process was killed"


class PowerActions:
    def __init__(self, journal: Journal, registry: ServerRegistry, processes: ProcessTracker, starter: Starter):
        self.journal = journal
        self.registry = registry
        self.processes = processes
        self.starter = starter
        self.liveness = LivenessWatches(journal, registry, processes)

    async def start(self, uuid: str, op_id: str, meta: Metadata) -> str:
        if not self.registry.may_fire(uuid, Trigger.START):
            raise Rejected(f"server is {self.registry.state(uuid)}")
        await self.journal.transition(uuid, Trigger.START, meta.cause or Cause.OPERATOR, meta, op_id)
        handle: ProcessHandle | None = None
        try:
            prepared = await self.starter.prepare(uuid, op_id, meta)
            config = prepared.spec.config
            matcher = DoneMatcher(config.done, config.strip_ansi)
            ready, sink = self.processes.readiness(uuid, matcher)
            gate = readiness_gate(config, ready)  # None: the done line alone, as in Wings
            launched_at = time.monotonic()
            launch = asyncio.create_task(self.starter.launch(prepared, sink))
            try:
                handle = await asyncio.shield(launch)
            except asyncio.CancelledError:
                handle = await _result_or_none(launch)  # a kill came: let it see the process
                if handle is not None:
                    self.processes.track(uuid, handle)
                raise
            self.processes.expect_exit(uuid, Cause.EXITED, op_id)  # an exit before ready is this start's
            self.processes.track(uuid, handle)
            await self.journal.record(uuid, ProcessStarted.of(handle), meta=meta)
            if not self.registry.may_fire(uuid, Trigger.READY):
                await self._abandon(uuid, handle, op_id)
                raise Failed(ABORTED_WHILE_LAUNCHING)
            if matcher.empty or handle.adopted:
                ready.set()
            if gate is not None and not handle.adopted:
                gate.start(launched_at)
            else:
                gate = None
            try:
                answered = await self.processes.ready_or_exited(uuid, ready if gate is None else gate.passed)
            finally:
                if gate is not None:
                    gate.cancel()
            if not answered:
                exit_info = self.processes.watcher(uuid).result()
                raise Failed(f"the server process exited before it was ready ({describe_exit(exit_info)})")
            if gate is not None and gate.failure is not None:  # the readiness probe's deadline passed
                self.processes.note(uuid, f"The server is not ready: {gate.failure}. Killing it.")
                await self._abandon(uuid, handle, op_id)
                raise Failed(gate.failure)
            self.processes.forget_exit(uuid, op_id)
            if gate is not None:
                await self.journal.record(uuid, gate.event(op_id), meta=meta)
            cause = Cause.PROCESS_READY if gate is None else Cause.PROBE_READY
            if not await self.journal.transition_if_allowed(uuid, Trigger.READY, cause, meta, op_id):
                await self._abandon(uuid, handle, op_id)
                raise Failed(ABORTED_WHILE_LAUNCHING)
            self.liveness.start(uuid, config, handle)
            return self.registry.state(uuid)  # the state `ready` led to, as power.yaml names it
        except PrebootFailure as exc:
            self.processes.note(uuid, f"Pre-boot check '{exc.check}' failed: {exc.reason}")
            failed = PrebootCheckFailed(check=exc.check, reason=exc.reason, operation_id=op_id)
            await self.journal.transition(uuid, Trigger.ABORT, Cause.PREBOOT_FAILED, meta, op_id, before=(failed,))
            raise Failed(str(exc)) from None
        except RuntimeFailure as exc:
            await self.journal.transition(uuid, Trigger.ABORT, Cause.LAUNCH_FAILED, meta, op_id)
            raise Failed(f"could not launch the server: {exc}") from None
        except asyncio.CancelledError:
            if handle is None:  # nothing runs: the start ends here, and the kill finds it offline
                await asyncio.shield(
                    self.journal.transition_if_allowed(uuid, Trigger.ABORT, Cause.CANCELLED, meta, op_id)
                )
            raise

    async def _abandon(self, uuid: str, handle: ProcessHandle, op_id: str) -> None:
        """Kill the process of a start that was aborted under it, and wait until its exit is
        recorded. A kill that finds no process while a start is launching one takes the server
        offline ("start aborted"); the process launched a moment later must not outlive that, or
        it would run untracked once the next start launches another."""
        self.processes.expect_exit(uuid, Cause.KILLED, op_id)  # not a crash: no restart policy applies
        await handle.kill()
        await self.processes.exited(uuid)

    async def stop(self, uuid: str, op_id: str, meta: Metadata) -> str:
        handle = self.processes.handle(uuid)
        if handle is None:
            # Nothing runs: a state left behind (should not happen after boot recovery) is closed.
            await self.journal.transition_if_allowed(uuid, Trigger.EXITED, Cause.NO_PROCESS, meta, op_id)
            return "the server was not running"
        await self.stop_process(uuid, handle, self.registry.config(uuid).stop_timeout, Cause.STOPPED, meta, op_id)
        return "stopped"

    async def stop_process(
        self, uuid: str, handle: ProcessHandle, timeout: float, cause: str, meta: Metadata, op_id: str | None = None
    ) -> None:
        """The configured stop, then SIGKILL after `timeout`; returns once the exit is recorded."""
        config = self.registry.config(uuid)
        await self.journal.transition_if_allowed(uuid, Trigger.STOP, meta.cause or cause, meta, op_id)
        self.processes.expect_exit(uuid, cause, op_id)
        try:
            if config.stop_type == "command":
                await handle.send_command(config.stop_value or "stop")
            elif config.stop_type == "native":
                await handle.native_stop()
            else:
                await handle.send_signal(config.stop_value or "SIGTERM")
        except RuntimeFailure as exc:
            log.warning("stop could not be delivered; killing", server=uuid, reason=str(exc))
            await handle.kill()
        try:
            await asyncio.wait_for(self.processes.exited(uuid), timeout)
        except TimeoutError:
            self.processes.note(uuid, f"The server did not stop within {timeout:g} s; killing it.")
            await self.journal.record(uuid, StopTimedOut(operation_id=op_id, timeout_seconds=timeout), meta=meta)
            await handle.kill()
        await self.processes.exited(uuid)

    async def restart(self, uuid: str, op_id: str, meta: Metadata) -> str:
        if not self.registry.may_fire(uuid, Trigger.START):
            await self.stop(uuid, op_id, meta)
        return await self.start(uuid, op_id, meta)

    async def kill(self, uuid: str, op_id: str, meta: Metadata) -> str:
        handle = self.processes.handle(uuid)
        if handle is not None:
            self.processes.expect_exit(uuid, Cause.KILLED, op_id)
            await handle.kill()
            await self.processes.exited(uuid)
            return "killed"
        if await self.journal.transition_if_allowed(uuid, Trigger.ABORT, Cause.KILLED, meta, op_id):
            return "start aborted"
        return NOTHING_TO_KILL


async def _result_or_none(task: asyncio.Task[ProcessHandle]) -> ProcessHandle | None:
    try:
        return await task
    except Exception:  # noqa: BLE001 - a launch that failed has nothing to kill; its own path records why
        return None
