"""Crash handling: what the daemon does when a server's process ends without anyone asking.

A process that exits from `starting` or `running` with no operator's stop or kill in progress is
a crash. Its exit (code, signal, OOM) and its last console lines are recorded as `server.crashed`,
and what is done about it as `crash.decided`, with the reason in words; both also reach the
console as daemon messages. The decision is taken from recorded facts only (the crash streak is
folded from the log, never kept in memory alone), so a daemon restart changes nothing about it:
a restart still pending when the daemon died is resumed at boot.

The rules, in order: crash detection on (the node's `crash_detection.enabled`, or the server's
own `crash_detection_enabled`); the server's restart policy (engine.servers.definition
RestartPolicy); a clean exit counts for `on-failure` only when `detect_clean_exit_as_crash`
says so (as in Wings); no restart of a suspended server; none when the last crash is more recent
than `crash_detection.timeout` (Wings' guard against boot loops); at most `max_restarts` crashes
in `window`; the n-th restart waits `backoff_initial * 2^(n-1)` seconds, capped.

An automatic restart is an ordinary power operation, with actor `system:crash-handler` and the
crash as its cause. An operator's action on the server while a restart is pending cancels it,
in the same commit as the operator's request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from wingman.engine.config import CrashDetection
from wingman.engine.environments.base import ExitInfo
from wingman.engine.event_types import Cause
from wingman.engine.events import CrashDecided, Event, Metadata, ServerCrashed
from wingman.engine.power.journal import Journal
from wingman.engine.power.outcomes import describe_exit
from wingman.engine.power.processes import UNCLAIMED, ProcessTracker
from wingman.engine.servers.definition import boot_restart_settings
from wingman.engine.servers.fold import ServerView, crashed_at
from wingman.engine.servers.registry import ServerRegistry, UnknownServer

log = structlog.get_logger("wingman.crashes")

CRASH_ACTOR = "system:crash-handler"
CRASH_CAUSE = Cause.CRASH
LAST_LINES = 20
HANDLER = Metadata(actor=CRASH_ACTOR, channel="internal", cause=CRASH_CAUSE)


@dataclass(frozen=True)
class Decision:
    restart: bool
    reason: str
    delay: float | None = None


def span(seconds: float) -> str:
    """600 -> "10 min", 90 -> "90 s", 7200 -> "2 h": how a reason says a duration."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


class CrashHandler:
    def __init__(
        self,
        journal: Journal,
        registry: ServerRegistry,
        processes: ProcessTracker,
        settings: CrashDetection,
        request_restart: Callable[[str, Metadata], Awaitable[object]],
        settled: Callable[[str], Awaitable[None]],
    ) -> None:
        self.journal = journal
        self.registry = registry
        self.processes = processes
        self.settings = settings
        self._request_restart = request_restart  # async (uuid, meta) -> Operation: the power engine's
        self._settled = settled  # async (operation id): returns once that operation has its outcome
        self._pending: dict[str, asyncio.Task[None]] = {}
        processes.on_exit(self._on_exit)

    # -- crashes -------------------------------------------------------------------------------

    async def _on_exit(self, uuid: str, info: ExitInfo, cause: str, operation_id: str | None) -> None:
        if cause == UNCLAIMED:  # a stop, a kill, a daemon shutdown or boot recovery claimed the others
            if operation_id is not None:  # it died during a start: that start's failure comes first
                await self._settled(operation_id)
            await self.crashed(uuid, info)
        elif cause == Cause.UNRESPONSIVE:  # killed as hung (engine.power.probing): a crash, its policy applies
            await self.crashed(uuid, info, HANDLER.model_copy(update={"cause": Cause.UNRESPONSIVE}))

    async def crashed(self, uuid: str, info: ExitInfo, meta: Metadata = HANDLER) -> Decision:
        """Record the crash, decide, record the decision, and schedule the restart if any."""
        try:
            view = self.registry.get(uuid)
        except UnknownServer:
            return Decision(False, "the server is gone")
        uptime = view.last_uptime
        reset = bool(view.config and uptime >= view.config.restart_policy.reset_after > 0)
        crash = ServerCrashed(
            exit_code=info.exit_code,
            signal=info.signal,
            oom_killed=info.oom_killed,
            reason=info.reason,
            uptime_seconds=round(uptime, 3),
            streak_reset=reset,
            last_lines=self.processes.console_tail(uuid, LAST_LINES),
        )
        [recorded] = await self.journal.record(uuid, crash, meta=meta)
        view = self.registry.get(uuid)
        # Judged at the moment of the exit, like the streak's earlier crashes (engine.servers.fold
        # crashed_at): a store that could not write for a while must not bunch crashes together.
        decision = self.decide(view, info, crashed_at(view, recorded))
        await self._apply(
            uuid,
            decision,
            recorded.event_id,
            meta,
            notes=[
                "---------- Detected server process in a crashed state! ----------",
                f"Exit: {describe_exit(info)}",
                f"Out of memory: {str(info.oom_killed).lower()}",
            ],
        )
        return decision

    def decide(self, view: ServerView, info: ExitInfo, now: datetime) -> Decision:
        cfg = view.config
        if cfg is None:
            return Decision(False, "not restarting: the server has no definition")
        policy = cfg.restart_policy
        enabled = self.settings.enabled if cfg.crash_detection_enabled is None else cfg.crash_detection_enabled
        if not enabled:
            return Decision(False, "not restarting: crash detection is disabled for this server")
        if policy.policy == "no":
            return Decision(False, "not restarting: the restart policy is no")
        clean = info.exit_code == 0 and not info.signal and not info.oom_killed
        if clean and policy.policy == "on-failure" and not self.settings.detect_clean_exit_as_crash:
            return Decision(False, "not restarting: it exited cleanly (exit code 0), which is no failure here")
        if view.suspended:
            return Decision(False, "not restarting: the server is suspended")
        streak = view.crash_streak
        if self.settings.timeout and len(streak) >= 2:
            since = (now - streak[-2]).total_seconds()
            if since < self.settings.timeout:
                return Decision(
                    False,
                    f"not restarting: the last crash was {since:.0f} s ago, less than "
                    f"crash_detection.timeout ({span(self.settings.timeout)})",
                )
        crashes = sum(1 for t in streak if (now - t).total_seconds() <= policy.window)
        if crashes > policy.max_restarts:
            return Decision(
                False,
                f"not restarting: {crashes} crashes in {span(policy.window)} "
                f"(restart_policy.max_restarts is {policy.max_restarts})",
            )
        delay = min(policy.backoff_initial * 2 ** (max(crashes, 1) - 1), policy.backoff_max)
        return Decision(
            True, f"restarting in {delay:g} s, crash {crashes} of {policy.max_restarts} in {span(policy.window)}", delay
        )

    async def _apply(
        self, uuid: str, decision: Decision, crash_event_id: str | None, meta: Metadata, notes: Sequence[str] = ()
    ) -> None:
        await self.journal.record(
            uuid,
            CrashDecided(
                restart=decision.restart,
                reason=decision.reason,
                delay_seconds=decision.delay,
                crash_event_id=crash_event_id,
            ),
            meta=meta,
        )
        for text in [*notes, decision.reason[:1].upper() + decision.reason[1:] + "."]:
            self.processes.note(uuid, text)
        log.info("crash decision", server=uuid, restart=decision.restart, reason=decision.reason)
        if decision.restart:
            self._schedule(uuid, decision.delay or 0.0, crash_event_id)

    # -- restarts ------------------------------------------------------------------------------

    def _schedule(self, uuid: str, delay: float, crash_event_id: str | None) -> None:
        self._cancel(uuid)
        self._pending[uuid] = asyncio.create_task(
            self._restart_later(uuid, delay, crash_event_id), name=f"crash-restart-{uuid}"
        )

    async def _restart_later(self, uuid: str, delay: float, crash_event_id: str | None) -> None:
        await asyncio.sleep(delay)
        if self._pending.get(uuid) is asyncio.current_task():
            del self._pending[uuid]
        meta = HANDLER.model_copy(update={"crash_event_id": crash_event_id})
        try:
            await self._request_restart(uuid, meta)
        except UnknownServer:
            pass  # deleted while the restart was pending
        except Exception:
            log.exception("automatic restart could not be requested", server=uuid)

    def _cancel(self, uuid: str) -> bool:
        task = self._pending.pop(uuid, None)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def pending(self, uuid: str) -> bool:
        return uuid in self._pending and not self._pending[uuid].done()

    # The power engine tells us of every request (RequestWatcher).
    def before(self, uuid: str, action: str, meta: Metadata) -> list[Event]:
        if meta.actor == CRASH_ACTOR or not self.pending(uuid):
            return []
        who = "stopped" if action in ("stop", "kill") else "started"
        return [CrashDecided(restart=False, reason=f"not restarting: an operator {who} it")]

    def accepted(self, uuid: str, action: str, meta: Metadata) -> None:
        if meta.actor != CRASH_ACTOR and self._cancel(uuid):
            self.processes.note(uuid, "The pending automatic restart is cancelled: an operator acted.")

    # -- boot ------------------------------------------------------------------------------------

    async def found_gone(self, uuid: str, info: ExitInfo, meta: Metadata) -> Decision:
        """Boot recovery found a server the log says was up with its process gone: a crash."""
        return await self.crashed(uuid, info, meta)

    async def at_boot(self, uuid: str, meta: Metadata) -> None:
        """After boot recovery restored an offline server: resume a restart that was pending when
        the daemon stopped, or bring back a server whose policy says so (Docker's semantics:
        `always` at every daemon start, `unless-stopped` unless an operator stopped it)."""
        view = self.registry.get(uuid)
        if view.state != self.registry.chart.initial or view.definition is None:
            return
        if view.pending_restart is not None:
            due = datetime.fromisoformat(view.pending_restart["due_at"])
            left = max(0.0, (due - datetime.now(UTC)).total_seconds())
            self.processes.note(uuid, f"Resuming the automatic restart that was pending ({left:.0f} s left).")
            self._schedule(uuid, left, view.pending_restart.get("crash_event_id"))
            return
        policy, own_switch = boot_restart_settings(view.definition)
        enabled = self.settings.enabled if own_switch is None else own_switch
        if not enabled or view.suspended or policy not in ("always", "unless-stopped"):
            return
        last = view.last_transition or {}
        stopped_by_operator = last.get("cause") in (Cause.STOPPED, Cause.KILLED)
        if policy == "unless-stopped" and (stopped_by_operator or last == {}):
            return
        if last == {}:
            return  # never started: nothing to bring back
        await self._apply(
            uuid,
            Decision(True, f"starting: the restart policy {policy} brings it back at daemon start", 0.0),
            None,
            meta,
        )

    async def close(self) -> None:
        tasks = list(self._pending.values())
        self._pending.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
