"""Where the power engine meets the probes (engine.probes, issue 31).

- A start waits on a ReadinessGate when the server's definition has a readiness probe: the server
  is `running` once the probe first succeeds (a network probe takes the place of the done line; a
  `done_line` probe is the done line with a deadline), and the start fails with the reason ("no
  answer on udp/27015 after 120 s") when the deadline passes first.
- While it runs, LivenessWatches probes it: each change between passing and failing is recorded,
  and `failure_threshold` failures in a row are recorded as the decision `probe.hung`; the process
  is then killed with its exit claimed as `unresponsive`, which the crash handler records as a
  crash like any other (engine.power.crashes), its policy deciding the restart.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from wingman.engine.environments.base import ExitInfo, ProcessHandle
from wingman.engine.event_types import Cause
from wingman.engine.events import Metadata
from wingman.engine.power.journal import Journal
from wingman.engine.power.processes import ProcessTracker
from wingman.engine.probes.attempt import Outcome, probe_host, where
from wingman.engine.probes.events import ProbeChanged, ProbeHung, ProbeReady
from wingman.engine.probes.runner import NeverReady, wait_ready, watch_liveness
from wingman.engine.probes.spec import Liveness, Probes, Readiness, probes_of
from wingman.engine.servers.definition import ServerConfig
from wingman.engine.servers.registry import ServerRegistry

log = structlog.get_logger("wingman.probes")

RUNNING = "running"  # the chart's state in which a server is probed for liveness
PROBED = Metadata(actor="daemon", channel="internal")  # a liveness probe's change
HUNG = Metadata(actor="daemon", channel="internal", cause=Cause.UNRESPONSIVE)  # the decision


def probes_for(config: ServerConfig) -> Probes | None:
    return probes_of(config.definition, config.allocations.default.port)


class ReadinessGate:
    """`passed` is set once the readiness probe has decided: `outcome` on success, `failure` (the
    start's reason) when the deadline passed first."""

    def __init__(self, spec: Readiness, config: ServerConfig, done_line: asyncio.Event) -> None:
        self.spec = spec
        self.host = probe_host(config.allocations.default.ip)
        self.done_line = done_line
        self.passed = asyncio.Event()
        self.outcome: Outcome | None = None
        self.failure: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, launched_at: float) -> None:
        self._task = asyncio.create_task(self._run(launched_at), name="readiness-probe")

    async def _run(self, launched_at: float) -> None:
        try:
            if self.spec.type == "done_line":
                left = self.spec.deadline - (time.monotonic() - launched_at)
                await asyncio.wait_for(self.done_line.wait(), max(left, 0.0))
                self.outcome = Outcome(True, "the done line")
            else:
                self.outcome = await wait_ready(self.spec, self.host, launched_at)
        except NeverReady as exc:
            self.failure = str(exc)
        except TimeoutError:
            self.failure = f"no done line after {self.spec.deadline:g} s"
        finally:
            self.passed.set()

    def event(self, op_id: str) -> ProbeReady:
        detail = self.outcome.detail if self.outcome else ""
        address = "console" if self.spec.type == "done_line" else where(self.spec)
        return ProbeReady(kind=self.spec.type, address=address, detail=detail[:200], operation_id=op_id)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


def readiness_gate(config: ServerConfig, done_line: asyncio.Event) -> ReadinessGate | None:
    probes = probes_for(config)
    return ReadinessGate(probes.readiness, config, done_line) if probes and probes.readiness else None


class LivenessWatches:
    """One liveness watch per running server that has a liveness probe."""

    def __init__(self, journal: Journal, registry: ServerRegistry, processes: ProcessTracker) -> None:
        self.journal = journal
        self.registry = registry
        self.processes = processes
        self._watches: dict[str, asyncio.Task[None]] = {}
        processes.on_exit(self._on_exit)

    def start(self, uuid: str, config: ServerConfig, handle: ProcessHandle) -> None:
        probes = probes_for(config)
        if probes is None or probes.liveness is None:
            return
        self.stop(uuid)
        spec, host = probes.liveness, probe_host(config.allocations.default.ip)
        self._watches[uuid] = asyncio.create_task(
            watch_liveness(
                spec,
                host,
                changed=lambda passing, detail, failures: self._changed(uuid, spec, passing, detail, failures),
                hung=lambda detail, failures: self._hung(uuid, spec, handle, detail, failures),
            ),
            name=f"liveness-{uuid}",
        )

    def stop(self, uuid: str) -> None:
        task = self._watches.pop(uuid, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def watching(self, uuid: str) -> bool:
        task = self._watches.get(uuid)
        return task is not None and not task.done()

    async def _on_exit(self, uuid: str, info: ExitInfo, cause: str, operation_id: str | None) -> None:
        self.stop(uuid)

    def _probed(self, uuid: str) -> bool:
        # A server being stopped or restarted stops answering on purpose: only `running` is judged.
        return self.registry.state(uuid) == RUNNING

    async def _changed(self, uuid: str, spec: Liveness, passing: bool, detail: str, failures: int) -> None:
        if not self._probed(uuid):
            return
        event = ProbeChanged(
            kind=spec.type,
            address=where(spec),
            passing=passing,
            detail=detail[:200],
            failures=failures,
            failure_threshold=spec.failure_threshold,
        )
        await self.journal.record(uuid, event, meta=PROBED)
        self.processes.note(
            uuid, f"Liveness probe on {where(spec)} " + ("passes again." if passing else f"fails: {detail}")
        )

    async def _hung(self, uuid: str, spec: Liveness, handle: ProcessHandle, detail: str, failures: int) -> None:
        if not self._probed(uuid) or self.processes.handle(uuid) is not handle:
            return
        # Recorded before the kill: a history shows why the server was killed.
        hung = ProbeHung(
            kind=spec.type, address=where(spec), detail=detail[:200], failures=failures, interval_seconds=spec.interval
        )
        await self.journal.record(uuid, hung, meta=HUNG)
        self.processes.note(uuid, f"No answer to {failures} liveness probes in a row on {where(spec)}: killing it.")
        log.warning("server declared hung", server=uuid, probe=spec.type, failures=failures, detail=detail)
        self.processes.expect_exit(uuid, Cause.UNRESPONSIVE)
        await handle.kill()

    async def close(self) -> None:
        tasks = list(self._watches.values())
        self._watches.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
