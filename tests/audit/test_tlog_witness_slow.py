"""Witnesses that are slow or away cost the daemon nothing: a witness stuck on a submission holds up
neither the log nor the checkpoints, and is then sent only the newest checkpoint (no queue); a
witness that is not listening yet is tried again, and cosigns the last checkpoint of a log that has
gone quiet meanwhile. In-process daemons on SQLite, with the witness written from the spec."""

from __future__ import annotations

import threading

from tests.support.checkpoints import daemon_config
from tests.support.daemon import free_port
from tests.support.tlog_witness import Histories, SpecWitness, write_log_key
from tests.support.waiting import eventually_async
from wingman.engine.config import parse_config
from wingman.engine.daemon import Daemon

NODE = "test-node"  # tests.support.checkpoints signs as this node
ORIGIN = f"wingman/{NODE}"


class GatedWitness(SpecWitness):
    """Holds every submission until the gate opens (counting them as they arrive)."""

    def __init__(self, *args: object, **kw: object):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.gate, self.arrived = threading.Event(), 0

    def add_checkpoint(self, body: str) -> str:
        self.arrived += 1
        assert self.gate.wait(60), "the test never opened the gate"
        return super().add_checkpoint(body)


async def test_a_stuck_witness_holds_nothing_up_and_is_then_sent_only_the_newest(tmp_path):
    w = GatedWitness("witness.test/slow", {ORIGIN: [write_log_key(tmp_path, NODE)]})
    witnesses = [{"url": w.serve(), "key": w.vkey, "timeout": 60}]
    daemon = Daemon(parse_config(daemon_config(tmp_path, every_events=10, witnesses=witnesses)), runtimes={})
    await daemon.start()
    try:
        cp, log = daemon.checkpointer, Histories()
        await log.append(daemon, 10)
        await eventually_async(lambda: w.arrived == 1, 30, "the first checkpoint to reach the witness")
        await log.append(daemon, 290)  # while the witness sits on the first submission
        await eventually_async(lambda: cp.last is not None and cp.last.size == 300, 30, "every checkpoint cut")
        assert w.arrived == 1 and not w.latest  # still stuck: the log and its checkpoints went on without it
        w.gate.set()
        await eventually_async(
            lambda: w.latest.get(ORIGIN, (0,))[0] == 300, 30, lambda: f"the newest cosigned: {w.answers}"
        )
        assert w.arrived == 2, w.answers  # the stuck one, then the newest: 28 checkpoints between were never queued
        assert [(a.old, a.size, a.status) for a in w.answers] == [(0, 10, 200), (10, 300, 200)]
    finally:
        w.gate.set()
        await daemon.stop()
        w.close()


async def test_a_witness_not_listening_yet_is_tried_again_on_a_quiet_log(tmp_path):
    port = free_port()
    w = SpecWitness("witness.test/late", {ORIGIN: [write_log_key(tmp_path, NODE)]})
    witnesses = [{"url": f"http://127.0.0.1:{port}/witness", "key": w.vkey, "timeout": 5}]
    daemon = Daemon(parse_config(daemon_config(tmp_path, every_events=25, witnesses=witnesses)), runtimes={})
    await daemon.start()
    try:
        [submitter] = daemon.checkpointer.cosigners.witnesses
        await Histories().append(daemon, 50)
        await eventually_async(lambda: submitter.failures >= 1, 30, "a submission that found nobody listening")
        w.serve(port=port)  # the witness comes up; the log has gone quiet
        await eventually_async(lambda: w.latest.get(ORIGIN, (0,))[0] == 50, 30, lambda: f"cosigned: {w.answers}")
        assert submitter.failures == 0
    finally:
        await daemon.stop()
        w.close()
