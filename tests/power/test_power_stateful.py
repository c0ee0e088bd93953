"""The power engine as a state machine that hypothesis drives: random starts, stops, restarts and
kills, lock waits, servers that exit by themselves, time passing, and daemon restarts, with real
processes. After every step:
- at most one operation other than a kill runs on a server at a time;
- every stored state change is legal, every operation has at most one outcome, and a fresh
  replay equals the live state (verification against the live daemon);
and at the end, once everything has settled, every operation has exactly one outcome and every
server's state matches its real process."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.conftest import EngineHarness
from tests.support.daemon import definition, kill_leftovers
from tests.support.http import processes_under
from tests.support.waiting import eventually_async
from wingman.engine.audit.verify import verify
from wingman.engine.power.processes import NotRunning

SERVERS = 2
NON_KILL = ("start", "stop", "restart")


class PowerEngine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="wingman-stateful-"))
        self.servers = [definition(env={"BOOT_SECONDS": "0.05"}, stop_timeout=2) for _ in range(SERVERS)]
        self.ids = [s["settings"]["uuid"] for s in self.servers]
        self.operations: list[str] = []
        self.harness = self._boot()

    def run(self, coro, timeout: float = 60):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def _boot(self) -> EngineHarness:
        harness = EngineHarness(self.folder, self.servers)
        self.run(harness.__aenter__())
        return harness

    # -- rules -------------------------------------------------------------------------------------

    @rule(
        server=st.integers(0, SERVERS - 1),
        action=st.sampled_from(["start", "stop", "restart", "kill"]),
        wait=st.sampled_from([0, 1, 5]),
    )
    def act(self, server, action, wait):
        op = self.run(self.harness.act(self.ids[server], action, wait))
        self.operations.append(op.id)

    @rule(server=st.integers(0, SERVERS - 1), how=st.sampled_from(["crash", "stop"]))
    def exits_by_itself(self, server, how):
        """The server's own doing: it crashes (exit 139) or shuts down cleanly (exit 0)."""
        try:
            self.run(self.harness.processes.send_command(self.ids[server], how))
        except NotRunning:
            pass

    @rule(seconds=st.sampled_from([0.0, 0.05, 0.3]))
    def time_passes(self, seconds):
        self.run(asyncio.sleep(seconds))  # deliberate: time passing is one of the steps explored

    @precondition(lambda self: len(self.operations) > 0)
    @rule()
    def daemon_restarts(self):
        """A clean daemon restart: operations in flight are interrupted, servers are adopted."""
        self.run(self.harness.daemon.stop())
        self.harness = self._boot()

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def one_operation_at_a_time_besides_kills(self):
        for uuid in self.ids:
            running = [
                op
                for op in self.harness.daemon.registry.open_operations(uuid)
                if op.status == "running" and op.action in NON_KILL
            ]
            assert len(running) <= 1, running

    @invariant()
    def the_log_is_sound_and_replays_to_the_live_state(self):
        d = self.harness.daemon
        report = self.run(verify(d.db, live=d.registry.views, in_hand=d.power.in_hand))
        assert report.ok, report.as_dict()["problems"][:3]

    # -- the end -----------------------------------------------------------------------------------

    def teardown(self):
        try:
            d = self.harness.daemon

            def at_rest() -> bool:
                return not any(d.registry.open_operations(u) for u in self.ids) and all(
                    d.registry.state(u) in ("offline", "running") for u in self.ids
                )

            self.run(eventually_async(at_rest, 120, "every operation finished, every server at rest"), timeout=130)
            for op_id in self.operations:
                # From the log: a daemon booted from snapshots holds only this run's operations.
                op, _ = self.run(d.registry.find_operation(op_id))
                assert op is not None and op.finished, (op_id, op)

            # A server that exited by itself is `running` until its exit is committed, a moment
            # after its processes are gone (and the loop runs only inside `self.run`): look until
            # state and processes agree, then assert on that look.
            def look() -> dict[str, tuple[str, list[int]]]:
                return {u: (d.registry.state(u), processes_under(d.config.data_directory / u)) for u in self.ids}

            self.run(
                eventually_async(
                    look,
                    30,
                    "each server's state and processes to agree (running: processes, else none)",
                    until=lambda seen: all(bool(alive) == (state == "running") for state, alive in seen.values()),
                )
            )
            for uuid in self.ids:
                self.run(self.harness.act(uuid, "kill"))
            self.run(self.harness.__aexit__(None, None, None))
        finally:
            self.loop.close()
            kill_leftovers(self.folder)
            shutil.rmtree(self.folder, ignore_errors=True)


PowerEngine.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPowerEngine = PowerEngine.TestCase
